"""Which of DDP's processes this one is, so that only one of them prints and writes."""

import os


def global_rank() -> int:
    """This process's rank among DDP's processes (0 when alone).

    Read as Lightning's `rank_zero_only` reads it: torchrun sets RANK; Lightning's launcher
    sets LOCAL_RANK for the processes it starts; SLURM and LSF set their own.
    """
    for name in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if name in os.environ:
            return int(os.environ[name])
    return 0
