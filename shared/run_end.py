"""How a run ends early, in every twin alike: one line, never a traceback.

- Bad input (a flag, a data file, a checkpoint, an output path): `BadInput`, one line on
  stderr, exit status 2, and nothing left behind.
- A training loss that turns nan or infinite (step 2, shared/divergence.py): `Diverged`; the
  steps that ran go to `--metrics-out`, one line on stderr, exit status 1.
- Ctrl-C, and SIGTERM (what `docker stop`, Kubernetes and SLURM send): the steps that ran go
  to `--metrics-out`, one line, exit status 1, as Lightning's Trainer ends a run it interrupts.
- An operating-system error on a path or a stream mid-run (a full disk, a run folder removed,
  output piped into `head` that closed early), even one raised in TensorBoard's writer thread
  or wrapped by Lightning in another exception: the steps that ran go to `--metrics-out`, one
  line on stderr, exit status 1.
- Results that cannot be written where `--metrics-out` points (`ResultsKeptElsewhere`): they
  are written to a file in the temporary folder instead, and the one line says where.

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
import threading
from collections.abc import Callable, Iterator

from shared import ranks
from shared.ranks import global_rank

INTERRUPTED = "Detected KeyboardInterrupt, attempting graceful shutdown ..."  # Lightning's words


class BadInput(Exception):
    """A bad flag value, data file, checkpoint or output path.

    The message is one line: the problem and the fix.
    """


class ResultsKeptElsewhere(Exception):
    """`--metrics-out` could not be written; the results went to another file.

    The message is one line: what failed, and where the results are.
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


def interrupted() -> bool:
    """Whether Ctrl-C or SIGTERM stopped this run (inside `in_one_line`; still true at exit)."""
    return _Interrupted.seen


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


def sigterm_stops_as_ctrl_c() -> None:
    """Give SIGTERM back the handler `in_one_line` gave it, Ctrl-C's, after a library replaced it.

    Lightning's Trainer does, as it starts fit, validate, test or predict: its handler logs the
    signal and, under DDP, broadcasts it to the other processes from inside the handler. A
    process that gets SIGTERM while its peer is held in another collective (a gradient's
    all-reduce, in C++, where no Python handler runs) then waits in that broadcast forever, and
    so does the peer: `scancel` hung a run of step 2 on two processes so. With Ctrl-C's handler
    each process stops at its next Python line, as the other twins do. Only in the main thread
    (where handlers live), and only inside `in_one_line`.
    """
    interrupted = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is threading.main_thread() and isinstance(interrupted,
                                                                             _Interrupted):
        signal.signal(signal.SIGTERM, interrupted)


@contextlib.contextmanager
def _quiet_writer_threads() -> Iterator[None]:
    """An OS error in a background thread (TensorBoard's event writer) prints no traceback.

    The writer thread stops on it, and the main thread meets the same error at its next write,
    flush or close, where `in_one_line` turns it into the run's one line.
    """
    before = threading.excepthook

    def hook(arguments) -> None:
        if not issubclass(arguments.exc_type, OSError):
            before(arguments)

    threading.excepthook = hook
    try:
        yield
    finally:
        threading.excepthook = before


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
    with _interrupts_as_ctrl_c(), _quiet_writer_threads():
        try:
            try:
                yield
            except BaseException:
                ranks.stopping()  # DDP: this process, not Lightning's launcher, ends the others
                raise
        except BadInput as error:
            _refused(str(error))
        except ResultsKeptElsewhere as error:
            print(f"error: {error}", file=sys.stderr)
            ranks.exit_together(1)
        except Diverged as error:  # under DDP every process stops at this step: one of them says so
            kept = _stopped()
            if global_rank() == 0:
                print(f"error: {error}{kept}", file=sys.stderr)
            ranks.exit_together(1)
        except KeyboardInterrupt:  # the Lightning Trainer catches it first (fit, test, predict)
            kept = _stopped()
            if global_rank() == 0:
                print(f"\n{INTERRUPTED}")
                if kept:
                    print(f"error: {kept.removeprefix('; ')}", file=sys.stderr)
            ranks.exit_together(1)
        except SystemExit as exit_:
            if _Interrupted.seen and exit_.code == 1:  # the Trainer stopped on Ctrl-C or SIGTERM
                _stopped()
            raise
        except BrokenPipeError:  # stdout went to a program that stopped reading, as `| head` does
            # no second error at exit, when Python flushes stdout
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            print("error: the output was closed before the run ended (piped into head?); "
                  "it stopped there", file=sys.stderr)
            ranks.exit_together(1)
        except OSError as error:  # a full disk, a folder that vanished, ...
            _os_error(error)
        except (MemoryError, RuntimeError) as error:
            if ranks.lost_a_peer(error):  # DDP: another process died (killed, out of memory, ...)
                _stopped()
                print(f"error: {ranks.LOST_A_PEER}", file=sys.stderr)
                ranks.exit_together(1)
            if isinstance(error, MemoryError) or "can't allocate memory" in str(error):
                _refused("not enough memory for these sizes; lower --hidden-size, --num-features, "
                         "--num-samples or --batch-size")
            if _within(error, OSError) is None:
                raise  # a real bug: keep its traceback
            _os_error(_within(error, OSError))
        except Exception as error:  # Lightning's logger wraps the writer's OSError in a ValueError
            if _within(error, OSError) is None:
                raise  # a real bug: keep its traceback
            _os_error(_within(error, OSError))


def _within(error: BaseException, kind: type) -> BaseException | None:
    """The first exception of `kind` in `error`'s chain (itself, its cause, its context)."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, kind):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def _os_error(error: OSError) -> None:
    """One line for an operating-system error mid-run, after the steps that ran were kept."""
    kept = _stopped()
    name = error.filename
    name = os.fsdecode(name) if isinstance(name, bytes) else name
    what = f"{error.strerror}: {name}" if error.strerror and name else error.strerror or error
    print(f"error: {what}; the run stopped there{kept}", file=sys.stderr)
    ranks.exit_together(1)


def _stopped() -> str:
    """Keep what a run that ends early ran; return "" or, when --metrics-out could not be
    written, "; " and where its results went instead."""
    for save in _on_stopped:
        try:
            save()
        except ResultsKeptElsewhere as error:
            return f"; {error}"
        except (OSError, BadInput):
            pass  # the run is ending anyway; its one line says why
    return ""


def _refused(message: str) -> None:
    for clean_up in _on_refused:
        clean_up()
    print(f"error: {message}", file=sys.stderr)
    ranks.exit_together(2)
