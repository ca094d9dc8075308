"""How a run ends early, in every twin alike: one line, never a traceback.

- Bad input (a flag, a data file, a checkpoint, an output path): `BadInput`, one line on
  stderr, exit status 2, and nothing left behind.
- A training loss that turns nan or infinite (step 2, shared/divergence.py): `Diverged`; the
  steps that ran go to `--metrics-out`, one line on stderr, exit status 1.
- Ctrl-C, and SIGTERM (what `docker stop`, Kubernetes and SLURM send): the steps that ran go
  to `--metrics-out`, one line, exit status 1, as Lightning's Trainer ends a run it interrupts.
- An operating-system error on a path or a stream mid-run (a full disk, output piped into
  `head` that closed early): one line on stderr, exit status 1.

Each twin runs its `main()` inside `in_one_line()`. What a run must still do when it ends
early is registered by a call: `RunRecord.start` calls `when_stopped` (a diverged or
interrupted run keeps its steps), `claim_run_folders` calls `when_refused` (a refused run
leaves nothing behind). What a process sets up before `main()` (the BLAS workspace, where
Lightning's lines go, a warning filter) is shared/process_setup.py's job. Nothing happens on
import.
"""

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator

from shared.ranks import global_rank

INTERRUPTED = "Detected KeyboardInterrupt, attempting graceful shutdown ..."  # Lightning's words


class BadInput(Exception):
    """A bad flag value, data file, checkpoint or output path.

    The message is one line: the problem and the fix.
    """


class Diverged(Exception):
    """The training loss became nan or infinite.

    The message is one line: where, and what to change.
    """


# What the run in this process must still do if it ends early: one callback each, set by the
# run (a process runs one twin at a time; the tests run many in a row, each replacing the last).
_on_stopped: list[Callable[[], None]] = []
_on_refused: list[Callable[[], None]] = []


def when_stopped(save: Callable[[], None]) -> None:
    """Have a run that stops early (diverged, interrupted) call `save` before its one line."""
    _on_stopped[:] = [save]


def when_refused(clean_up: Callable[[], None]) -> None:
    """Have a run refused for bad input call `clean_up` before its one line."""
    _on_refused[:] = [clean_up]


class _Interrupted:
    """SIGINT and SIGTERM both raise KeyboardInterrupt, and remember that they did."""

    seen = False

    def __call__(self, signum, frame) -> None:
        type(self).seen = True
        raise KeyboardInterrupt


@contextlib.contextmanager
def _interrupts_as_ctrl_c() -> Iterator[None]:
    """While the run lasts, SIGTERM stops it as Ctrl-C does (Lightning's Trainer alone exits 0)."""
    _Interrupted.seen = False
    signals = (signal.SIGINT, signal.SIGTERM)
    before = {number: signal.signal(number, _Interrupted()) for number in signals}
    try:
        yield
    finally:
        for number, handler in before.items():
            signal.signal(number, handler)


@contextlib.contextmanager
def in_one_line() -> Iterator[None]:
    """Run a twin's `main()` so that it ends in one line, whatever stops it.

    Bad input (`BadInput`, and so `DataError`; sizes too large for memory): one line on stderr,
    exit status 2, and the run's unused folders removed. A diverged loss: the steps that ran go
    to --metrics-out, one line on stderr, exit status 1. Ctrl-C or SIGTERM: the steps that ran
    go to --metrics-out, then one line, in Lightning's words, and exit status 1, as Lightning's
    Trainer ends a run it interrupts (lightning/pytorch/trainer/call.py: the Lightning twins'
    Trainer catches it first and exits itself). An operating-system error: one line, status 1.
    """
    with _interrupts_as_ctrl_c():
        try:
            yield
        except BadInput as error:
            _refused(str(error))
        except Diverged as error:  # under DDP every process stops at this step: one of them says so
            _stopped()
            if global_rank() == 0:
                print(f"error: {error}", file=sys.stderr)
            sys.exit(1)
        except KeyboardInterrupt:  # the Lightning Trainer catches it first (fit, test, predict)
            _stopped()
            print(f"\n{INTERRUPTED}")
            sys.exit(1)
        except SystemExit as exit_:
            if _Interrupted.seen and exit_.code == 1:  # the Trainer stopped on Ctrl-C or SIGTERM
                _stopped()
            raise
        except BrokenPipeError:  # stdout went to a program that stopped reading, as `| head` does
            # no second error at exit, when Python flushes stdout
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            print("error: the output was closed before the run ended (piped into head?); "
                  "it stopped there", file=sys.stderr)
            sys.exit(1)
        except OSError as error:  # a full disk, a folder that vanished, ...
            name = error.filename
            where = f" ({name})" if name and str(name) not in str(error) else ""
            print(f"error: {error.strerror or error}{where}", file=sys.stderr)
            sys.exit(1)
        except (MemoryError, RuntimeError) as error:
            if not isinstance(error, MemoryError) and "can't allocate memory" not in str(error):
                raise  # a real bug: keep its traceback
            _refused("not enough memory for these sizes; lower --hidden-size, --num-features, "
                     "--num-samples or --batch-size")


def _stopped() -> None:
    for save in _on_stopped:
        try:
            save()
        except (OSError, BadInput):
            pass  # the run is ending anyway; its one line says why


def _refused(message: str) -> None:
    for clean_up in _on_refused:
        clean_up()
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)
