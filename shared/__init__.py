"""The project's own shared package: everything both twins of an example must agree on.

Datasets (`shared.data`), models (`shared.models`), command-line flags (`shared.cli`),
seeding (`shared.seeding`) and the metrics record (`shared.metrics`) live here once, so
that `plain_pytorch/X.py` and `lightning_version/X.py` differ only where the lesson is.
`shared.ladder` says which step teaches what.

This is not the `../shared` folder beside the checkout (team data and tools); the
project never imports from that one.
"""
