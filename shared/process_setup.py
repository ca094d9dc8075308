"""What a process sets up before a twin's `main()` runs, and puts back when it ends.

- MKL's matrix-product workspace is reserved (shared/blas.py), so that the run's bits do not
  depend on how much memory the machine has free.
- Lightning's INFO lines ("Seed set to 42", "GPU available: ...") go to stdout, so that
  stderr holds only the one line of a run that ends early (shared/run_end.py), and without
  the tip advertising Lightning's cloud logger that a Trainer logs as it starts.
- One FutureWarning that torch 2.14 raises inside Lightning 2.6's own code (`LeafSpec`, in
  lightning/pytorch/utilities/_pytree.py, nothing a learner can change) is not shown; nor
  is the hint Lightning gives on a machine where SLURM is installed but the run was not
  started by `srun` ("The `srun` command is available on your system but is not used"): a
  run started without srun on such a machine is what a user meant (docs/scaling-out.md).
- When the process exits, the garbage collector's last passes leave alone what is alive by
  then (`gc.freeze()`, run at exit): torch and Lightning build some 400,000 objects as they
  are imported, and scanning them all again on the way out took about a second of every
  Lightning run and half a second of a plain one. Nothing a run keeps waits for those
  passes: its files are written and closed before `main()` returns.

Each twin runs its `main()` inside `in_place()`, inside shared/run_end.py's `in_one_line()`.
Nothing happens on import.
"""

import atexit
import contextlib
import gc
import logging
import sys
import warnings
from collections.abc import Iterator

from shared.blas import reserve_blas_workspace

LEAFSPEC_WARNING = r"`isinstance\(treespec, LeafSpec\)` is deprecated"
SRUN_HINT = r"The `srun` command is available on your system but is not used"


@contextlib.contextmanager
def in_place() -> Iterator[None]:
    """While `main()` runs: the BLAS workspace reserved, Lightning's INFO lines on stdout, and
    the LeafSpec warning and the srun hint hidden. The last two are put back at the end."""
    with warnings.catch_warnings(), _lightning_info_on_stdout():
        warnings.filterwarnings("ignore", LEAFSPEC_WARNING, FutureWarning)
        warnings.filterwarnings("ignore", SRUN_HINT)
        reserve_blas_workspace()  # so that memory short mid-run cannot change a bit
        _end_quickly()
        yield


def _end_quickly() -> None:
    """Freeze what is alive at exit, once (registered again, it would run twice)."""
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)


class _ToStdout(logging.StreamHandler):
    def filter(self, record: logging.LogRecord) -> bool:
        """Leave out the Trainer's one advert, "💡 Tip: ... try installing litlogger ..."."""
        return not record.getMessage().startswith("💡 Tip") and super().filter(record)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout  # looked up at each line: pytest and notebooks replace sys.stdout
        super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        if isinstance(sys.exc_info()[1], OSError):  # stdout closed (`| head -1`): end as print()
            raise
        super().handleError(record)


@contextlib.contextmanager
def _lightning_info_on_stdout() -> Iterator[None]:
    """While the run lasts, Lightning's INFO lines go to stdout; put back at the end.

    Lightning logs them to stderr, where they would stand above the one error line of a run
    refused inside the Trainer (say, step 2's DataModule finding no data). Nothing to do in a
    plain twin: it never imports Lightning, so its loggers have no handler.
    """
    swapped = []
    for name in ("lightning.pytorch", "lightning.fabric"):  # the loggers Lightning gives a handler
        logger = logging.getLogger(name)
        for handler in [h for h in logger.handlers if type(h) is logging.StreamHandler]:
            replacement = _ToStdout()
            logger.removeHandler(handler)
            logger.addHandler(replacement)
            swapped.append((logger, handler, replacement))
    try:
        yield
    finally:
        for logger, handler, replacement in swapped:
            logger.removeHandler(replacement)
            logger.addHandler(handler)
