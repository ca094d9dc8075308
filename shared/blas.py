"""Matrix products that come out the same, bit for bit, even on a machine short of memory.

torch multiplies float32 matrices on the CPU with Intel MKL's sgemm. The first time a
product of a given size runs in a thread, MKL allocates a workspace for it with malloc (from
0.1 MB for small products up to about 4.8 MB for large ones) and keeps it for later products.
When that malloc fails, as it can when the machine's memory is exhausted at that moment,
MKL does not fail: it computes the product without the workspace, with a kernel that adds
in another order, and the result differs in the last bits. One such step is enough for a
run to part from its twin by 1e-7 (`python -m tools.blas_repro` shows it, and docs/parity.md
tells the story).

`reserve_blas_workspace()` runs one product large enough that MKL allocates its largest
workspace, for every thread, at the start of the run, when memory is not short. Every later
product reuses it, so no allocation is left to fail mid-run. `in_place()`
(shared/process_setup.py), which every twin's `__main__` runs, calls it first; so do the tests.
"""

import torch

# The product that makes MKL allocate its largest workspace: with n >= 8192 and k >= 2048
# MKL's workspace reaches its cap (4,981,408 bytes a thread with torch 2.14's MKL 2024.2).
WORKSPACE_SHAPE = (64, 2048, 16384)  # (m, k, n): 0.27 GFLOP and 128 MB, once
_reserved = False


def reserve_blas_workspace() -> None:
    """Have MKL allocate its largest matrix-product workspace now, once per process."""
    global _reserved
    if _reserved:
        return
    m, k, n = WORKSPACE_SHAPE
    torch.ones(m, k) @ torch.ones(k, n)
    _reserved = True
