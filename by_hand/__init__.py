"""Lightning's features written out by hand, one readable file each.

The plain twins call these where Lightning would do the work. Each file opens by naming
the Lightning API it mirrors; a parity test holds it against Lightning's own result.
"""
