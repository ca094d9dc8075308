"""How a run ends early, in every twin alike: one line, never a traceback.

- Bad input (a flag, a data file, a checkpoint, an output path): `BadInput`, one line on
  stderr, exit status 2, and nothing left behind.
- A training loss that turns nan or infinite (step 2): `stop_if_diverged` raises `Diverged`;
  the steps that ran go to `--metrics-out`, one line on stderr, exit status 1.
- Ctrl-C, and SIGTERM (what `docker stop`, Kubernetes and SLURM send): the steps that ran go
  to `--metrics-out`, one line, exit status 1, as Lightning's Trainer ends a run it interrupts.
- An operating-system error on a path or a stream mid-run (a full disk, output piped into
  `head` that closed early): one line on stderr, exit status 1.
- Under DDP, `global_rank` says which process this is, so that only one of them speaks.

Each twin runs its `main()` inside `exit_on_bad_input()`. Nothing happens on import.
"""

import contextlib
import logging
import os
import signal
import sys
import warnings
from collections.abc import Callable, Iterator

import torch

from shared.blas import reserve_blas_workspace


class BadInput(Exception):
    """A bad flag value, data file, checkpoint or output path. The message is one line: the problem
    and the fix."""


class Diverged(Exception):
    """The training loss became nan or infinite. The message is one line: where, and what to
    change."""


# What a run that ends early must still do. RunRecord.start adds "write --metrics-out" to the
# first (a diverged or interrupted run keeps its steps); claim_run_folders adds "remove my
# folders while they are unused" to the second (a refused run leaves nothing behind).
WHEN_STOPPED: list[Callable[[], None]] = []
WHEN_REFUSED: list[Callable[[], None]] = []
INTERRUPTED = "Detected KeyboardInterrupt, attempting graceful shutdown ..."  # Lightning's words


def global_rank() -> int:
    """This process's rank among DDP's processes (0 when alone), read as Lightning's rank_zero_only
    reads it.

    torchrun sets RANK; Lightning's launcher sets LOCAL_RANK for the processes it starts.
    """
    for name in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if name in os.environ:
            return int(os.environ[name])
    return 0


def stop_if_diverged(loss: torch.Tensor, step: int, lr: float, name: str = "train_loss") -> None:
    """Stop the run if `loss`, the loss of optimizer step `step` (counted from 1), is nan or
    infinite.

    Training on would only spread the nan through every weight. Both twins check after the
    step, so both record the same steps; the run ends before validating or saving a checkpoint,
    so last.ckpt keeps the last good epoch. They check each epoch's `val_loss` the same way
    (`name`), before any checkpoint: a nan model is never saved as the best. Under DDP each
    process has its own loss, and all must stop at the same step (a process that trained on
    would wait forever for the others in its next all-reduce), so they agree first.
    """
    diverged = (~torch.isfinite(loss.detach())).to(torch.float32)
    if torch.distributed.is_initialized():
        torch.distributed.all_reduce(diverged)  # how many processes diverged at this step
    if diverged.item() > 0:
        where = (f"is {loss.item()}" if not torch.isfinite(loss)
                 else "is not finite in another process")
        raise Diverged(f"{name} {where} at step {step}: training diverged, so it stopped there; "
                       f"lower --lr (it was {lr:g})")


class _ToStdout(logging.StreamHandler):
    def filter(self, record: logging.LogRecord) -> bool:
        """Leave out the Trainer's one advert, "💡 Tip: ... try installing litlogger ..."."""
        return not record.getMessage().startswith("💡 Tip") and super().filter(record)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout  # looked up at each line: pytest and notebooks replace sys.stdout
        super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        # stdout closed (`| head -1`): end as a print() would
        if isinstance(sys.exc_info()[1], OSError):
            raise
        super().handleError(record)


@contextlib.contextmanager
def _lightning_info_on_stdout() -> Iterator[None]:
    """While the run lasts, Lightning's INFO lines ("Seed set to 42", "GPU available: ...") go to
    stdout,
    without the tip advertising Lightning's cloud logger that a Trainer logs as it starts.

    Lightning logs them to stderr, where they would stand above the one error line of a run
    refused inside the Trainer (say, step 2's DataModule finding no data). Put back at the end.
    Nothing to do in a plain twin: it never imports Lightning, so its loggers have no handler.
    """
    swapped = []
    # the two loggers Lightning gives a handler
    for name in ("lightning.pytorch", "lightning.fabric"):
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


class _Interrupted:
    """SIGINT and SIGTERM both raise KeyboardInterrupt, and remember that they did."""

    seen = False

    def __call__(self, signum, frame) -> None:
        type(self).seen = True
        raise KeyboardInterrupt


@contextlib.contextmanager
def _interrupts_as_ctrl_c() -> Iterator[None]:
    """While the run lasts, SIGTERM stops it as Ctrl-C does (Lightning's Trainer alone would exit
    0)."""
    _Interrupted.seen = False
    before = {number: signal.signal(number, _Interrupted()) for number in (signal.SIGINT,
                                                                           signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in before.items():
            signal.signal(number, handler)


@contextlib.contextmanager
def exit_on_bad_input() -> Iterator[None]:
    """Run a twin's `main()` so that it ends in one line, whatever stops it.

    Bad input (`BadInput`, and so `DataError`; sizes too large for memory): one line on stderr,
    exit status 2, and the run's unused folders removed. A diverged loss: the steps that ran go
    to --metrics-out, one line on stderr, exit status 1. Ctrl-C or SIGTERM: the steps that ran
    go to --metrics-out, then one line, in Lightning's words, and exit status 1, as Lightning's
    Trainer ends a run it interrupts (lightning/pytorch/trainer/call.py: the Lightning twins'
    Trainer catches it first and exits itself). An operating-system error: one line, status 1.
    While it runs, Lightning's INFO lines go to stdout, and one FutureWarning that torch 2.14
    raises inside Lightning 2.6's own code (`LeafSpec`, in lightning/pytorch/utilities/_pytree.py,
    nothing a learner can change) is not shown. Before `main()` starts, MKL's matrix-product
    workspace is reserved (shared/blas.py), so that the run's bits do not depend on how much
    memory the machine has free.
    """
    with warnings.catch_warnings(), _lightning_info_on_stdout(), _interrupts_as_ctrl_c():
        warnings.filterwarnings("ignore", r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                                FutureWarning)
        try:
            # so that memory short mid-run cannot change a bit (shared/blas.py)
            reserve_blas_workspace()
            yield
        except BadInput as error:
            _refused(str(error))
        except Diverged as error:  # under DDP every process stops at this step: one of them says so
            _stopped()
            if global_rank() == 0:
                print(f"error: {error}", file=sys.stderr)
            sys.exit(1)
        # the Lightning twins' Trainer catches it first, inside fit/test/predict
        except KeyboardInterrupt:
            _stopped()
            print(f"\n{INTERRUPTED}")
            sys.exit(1)
        except SystemExit as exit_:
            # Lightning's Trainer stopped on Ctrl-C or SIGTERM
            if _Interrupted.seen and exit_.code == 1:
                _stopped()
            raise
        except BrokenPipeError:  # stdout went to a program that stopped reading, as `| head` does
            # no second error at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            print("error: the output was closed before the run ended (piped into head?); it "
                  "stopped there",
                  file=sys.stderr)
            sys.exit(1)
        except OSError as error:  # a full disk, a folder that vanished, ...
            named = error.filename and str(error.filename) not in str(error)
            where = f" ({error.filename})" if named else ""
            print(f"error: {error.strerror or error}{where}", file=sys.stderr)
            sys.exit(1)
        except (MemoryError, RuntimeError) as error:
            if not isinstance(error, MemoryError) and "can't allocate memory" not in str(error):
                raise  # a real bug: keep its traceback
            _refused("not enough memory for these sizes; lower --hidden-size, --num-features, "
                     "--num-samples or "
                     "--batch-size")


def _stopped() -> None:
    for save in WHEN_STOPPED:
        try:
            save()
        except (OSError, BadInput):
            pass  # the run is ending anyway; its one line says why


def _refused(message: str) -> None:
    for clean_up in WHEN_REFUSED:
        clean_up()
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)
