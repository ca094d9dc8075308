"""Which of DDP's processes this one is, so that only one of them prints and writes; and how
all of them end together when the run stops early.

Nothing happens on import.
"""

import os
import signal
import subprocess
import sys
import threading
import time

# How long the process that started the others (Lightning's launcher, `--devices N` without
# torchrun) waits for them to end after a stop, before it ends them itself.
CHILDREN_GRACE_SECONDS = 20

# The thread that Lightning's launcher starts beside its own process (lightning/fabric/strategies/
# launchers/subprocess_script.py: _ChildProcessObserver).
LIGHTNINGS_OBSERVER = "child-process-observer"

# What a process says when another process of its run died mid-run (SIGKILL, out of memory, a
# machine lost): the others see it at their next all-reduce, as an error of the gloo or nccl
# backend, within a second when the dead process's connections close (not after the 30 minutes
# of a collective's default timeout).
LOST_A_PEER = ("another process of this run died (killed, or out of memory?), so this one stopped "
               "too; the steps that ran are kept and last.ckpt holds the last whole epoch: rerun "
               "the same command with --resume auto to go on from it")
_PEER_GONE = ("Connection closed by peer", "Connection reset by peer", "Broken pipe",
              "NCCL communicator was aborted")

_children: list[subprocess.Popen] = []  # the processes this one must wait for before it exits
_lost: list[BaseException] = []  # the error that told this process another one died


def global_rank() -> int:
    """This process's rank among DDP's processes (0 when alone).

    torchrun sets RANK, SLURM's srun SLURM_PROCID, IBM's jsrun JSM_NAMESPACE_RANK. The
    processes that Lightning's own launcher starts have only LOCAL_RANK, their rank on this
    machine, and NODE_RANK; there, the first process of a machine other than the first is not
    rank 0, though its LOCAL_RANK is 0 (Lightning's `rank_zero_only` reads LOCAL_RANK alone
    before its strategy corrects it: here it must be right from the start, since the run's
    folders are claimed before).
    """
    for name in ("RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if name in os.environ:
            return int(os.environ[name])
    local = int(os.environ.get("LOCAL_RANK", 0))
    node = int(os.environ.get("NODE_RANK", os.environ.get("GROUP_RANK", 0)))
    return node * int(os.environ.get("LOCAL_WORLD_SIZE", local + 1)) + local


def stopping() -> None:
    """Called first when a run stops early (shared/run_end.py), in every process.

    When Lightning's launcher started the other processes from this one (`fabric.launch()`
    or `trainer.fit` with `--devices N`, no torchrun), a thread of its own looks at them every
    5 seconds and, as soon as one has exited with an error, SIGKILLs them all, this process
    too. But a stop reaches every process (a nan loss at the same step, a dead peer at the next
    all-reduce), so another process often exits first, and this one, rank 0, would die
    without its one line or its --metrics-out, with status -9. From here on this process ends
    the others itself, in `exit_together`: it waits for them, then kills what is left.

    A second Ctrl-C or SIGTERM (torchrun sends one to every process once one has died) would
    only cut the stop short, halfway through its --metrics-out: from here on both are ignored,
    as Lightning's Trainer ignores a second Ctrl-C. (`in_one_line` puts the handlers back.)
    """
    if threading.current_thread() is threading.main_thread():
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, signal.SIG_IGN)
    for thread in threading.enumerate():
        if thread.name == LIGHTNINGS_OBSERVER:
            thread._run = lambda: True  # its next look ends it, killing nothing, saying nothing
            thread._terminate_all = lambda: None  # and were it looking now: its kill is a no-op
            _children[:] = thread._child_processes


def lost_a_peer(error: BaseException) -> bool:
    """Whether `error` is a collective's failure because another process of the run is gone."""
    dead = type(error).__name__ in ("DistBackendError", "DistNetworkError") or any(
        sign in str(error) for sign in _PEER_GONE)
    if dead:
        _lost[:] = [error]
    return dead


def peer_lost() -> bool:
    """Whether this process stopped because another one died (then it waits for no one)."""
    return bool(_lost)


def exit_together(status: int) -> None:
    """Exit with `status` once the processes this one started have ended (at most
    CHILDREN_GRACE_SECONDS, then they are killed), so that none is left behind."""
    deadline = time.monotonic() + CHILDREN_GRACE_SECONDS
    for child in _children:
        try:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    sys.exit(status)
