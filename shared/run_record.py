"""The record of one run: what every twin measures, prints and, with `--metrics-out`, writes.

A twin makes its record with `RunRecord.start` just before training (a Lightning twin: just
before its Trainer, which gets the record's callback, shared/lightning_callbacks.py), hands
`record.train_loss` to its loop as a plain list of losses, prints each epoch's line through
`end_epoch`, and ends `main()` with `finish`, which prints the summary line and writes the
record. The twins' numbers are compared through it: tests/test_parity.py and `python -m
tools.compare` run the twins with `--metrics-out` and assert the records equal, bit for bit.

`--metrics-out PATH` writes the record as JSON, one schema for every twin:
    {"example": str, "implementation": "plain" | "fabric" | "lightning", "config": {flag: value},
     "train_loss": [float per optimizer step], "val_loss": [float per epoch],
     "val_accuracy": [float per epoch], "seconds": float,
     "test": {"test_loss": float, "test_accuracy": float} or null, "predictions": [int] or null,
     "learning_rate": [float per optimizer step] (step 4; else []), "sample": str or null}
Step 4 (tiny_gpt) counts steps, not epochs: "val_loss" and "val_accuracy" (the share of next
characters guessed right) hold one float per evaluation, every --eval-interval steps.
With --accumulate-grad-batches K > 1, "train_loss" has one float per batch (K per step),
each the loss of that batch as training_step logged it.
"seconds" is the record's own clock: the wall time from `start` to `finish`. Every twin starts
its record just before training (after its data and model are built) and finishes it last, so
"seconds" covers training and validation (a Lightning twin's: all of `trainer.fit`, with its
sanity check, and in step 2 the DataModule's loading), step 3's finders and step 2's test and
predict. A run stopped early (a nan loss, Ctrl-C) is written with the steps and time it had.
Floats are written with Python's shortest round-trip repr, so a float32 loss read back
from the JSON is the same number, bit for bit. Standard JSON has no NaN or Infinity, so a
loss that diverged is written as null. What the twins print about a run (each epoch's line,
the test line, the summary, the predictions beside the true labels) is here too, so all
three print the same.
"""

import argparse
import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from torch.utils.data import Dataset

from shared.ranks import global_rank
from shared.run_end import ResultsKeptElsewhere, when_stopped


@dataclass
class RunRecord:
    example: str
    implementation: str  # "plain", "fabric" or "lightning"
    config: dict
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    seconds: float = 0.0  # from start() to finish(): see the module's docstring
    test: dict | None = None  # --test: {"test_loss": float, "test_accuracy": float}
    predictions: list[int] | None = None  # --predict N: the labels predicted for N test samples
    learning_rate: list[float] = field(default_factory=list)  # step 4: each step's lr
    sample: str | None = None  # step 4: the text sampled at the end

    def __post_init__(self) -> None:
        self._started = time.perf_counter()  # the record's clock (not a field: not in the JSON)

    @classmethod
    def start(cls, example: str, implementation: str, args: argparse.Namespace) -> "RunRecord":
        record = cls(example, implementation, config=dict(vars(args)))
        when_stopped(lambda: record.write(args))  # a run that stops early keeps its steps
        return record

    def end_epoch(self, epoch: int, val_loss: float, val_accuracy: float) -> str:
        """Keep one epoch's validation metrics; return the line every twin prints for it."""
        self.val_loss.append(val_loss)
        self.val_accuracy.append(val_accuracy)
        return f"epoch {epoch}: val_loss {val_loss:.4f}, val_accuracy {val_accuracy:.4f}"

    def end_eval(self, step: int, val_loss: float, val_accuracy: float) -> str:
        """Step 4: keep one evaluation (every --eval-interval steps); return its line."""
        self.val_loss.append(val_loss)
        self.val_accuracy.append(val_accuracy)
        return f"step {step}: val_loss {val_loss:.4f}, val_accuracy {val_accuracy:.4f}"

    def end_test(self, test_loss: float, test_accuracy: float) -> str:
        """Keep step 2's test results; return the line the plain and Fabric twins print for them."""
        self.test = {"test_loss": test_loss, "test_accuracy": test_accuracy}
        return f"test_loss {test_loss:.4f}, test_accuracy {test_accuracy:.4f}"

    def summary(self) -> str:
        """One line for the terminal: what a learner wants to see at the end of a run."""
        if not self.val_loss:
            return f"{self.implementation}: {len(self.train_loss)} steps, no validation"
        return (
            f"{self.implementation}: {len(self.train_loss)} steps, "
            f"last train_loss {self.train_loss[-1]:.4f}, val_loss {self.val_loss[-1]:.4f}, "
            f"val_accuracy {self.val_accuracy[-1]:.4f}, {self.seconds:.1f} s"
        )

    def finish(self, args: argparse.Namespace) -> "RunRecord":
        """The end of every twin's main(): stop the clock, print the summary, write the record.

        The summary is printed and `--metrics-out` written by DDP's rank 0 only.
        """
        self.seconds = time.perf_counter() - self._started
        if global_rank() == 0:
            print(self.summary())
        self.write(args)
        return self

    def write(self, args: argparse.Namespace) -> None:
        """Write the JSON to `--metrics-out`, unless there is none or this is a `--dry-run`.

        Written whole or not at all: into a temporary file beside it, then renamed over it. If
        that fails (a disk that filled up during the run, a folder removed), the results go to
        a file in the temporary folder instead, and `ResultsKeptElsewhere` says where.
        """
        if not args.metrics_out or args.dry_run or global_rank() > 0:  # DDP: rank 0 writes it
            return
        self.seconds = self.seconds or time.perf_counter() - self._started  # stopped early: so far
        path = Path(args.metrics_out)
        text = json.dumps(_finite_or_null(asdict(self)), indent=1, allow_nan=False) + "\n"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_whole(path, text)
        except OSError as error:
            reason = error.strerror or error
            kept = _keep_elsewhere(text, f"{self.example}-{self.implementation}-")
            where = f"its results are in {kept}" if kept else "no other place could hold them"
            raise ResultsKeptElsewhere(f"cannot write --metrics-out {path} ({reason}); "
                                       f"{where}") from None


def _write_whole(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it over `path`: a failure
    leaves the previous file (or none), never an empty or half-written one."""
    temporary = path.with_name(f".{path.name}.part")
    try:
        with open(temporary, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())  # a full disk shows here, not after the rename
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _keep_elsewhere(text: str, prefix: str) -> Path | None:
    """Write `text` to a new file in the temporary folder (else the home folder); its path, or
    None when neither can hold it."""
    for folder in (tempfile.gettempdir(), Path.home()):
        try:
            descriptor, name = tempfile.mkstemp(prefix=prefix, suffix=".json", dir=folder)
        except OSError:
            continue
        try:
            with os.fdopen(descriptor, "w") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            return Path(name)
        except OSError:
            Path(name).unlink(missing_ok=True)
    return None


def _finite_or_null(value):
    """The record with every NaN or infinite float replaced by None (null), at any depth."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_finite_or_null(item) for item in value]
    if isinstance(value, dict):
        return {key: _finite_or_null(item) for key, item in value.items()}
    return value


def show_predictions(predictions: list[int], dataset: Dataset) -> None:
    """Print each predicted label beside the true one, as each twin of step 2 does for --predict."""
    print("sample  predicted  true")
    for index, (predicted, (_, label)) in enumerate(zip(predictions, dataset)):
        mark = "" if predicted == int(label) else "  <- wrong"
        print(f"{index:6}  {predicted:9}  {int(label):4}{mark}")
