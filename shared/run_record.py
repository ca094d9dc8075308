"""The record of one run, filled the same way by every twin and written as JSON.

Schema (`--metrics-out PATH`), identical for both implementations:
    {"example": str, "implementation": "plain" | "lightning", "config": {flag: value},
     "train_loss": [float per optimizer step], "val_loss": [float per epoch],
     "val_accuracy": [float per epoch], "seconds": float,
     "test": {"test_loss": float, "test_accuracy": float} or null, "predictions": [int] or null}
With --accumulate-grad-batches K > 1, "train_loss" has one float per batch (K per step),
each the loss of that batch as training_step logged it.
Floats are written with Python's shortest round-trip repr, so a float32 loss read back
from the JSON is the same number, bit for bit. Standard JSON has no NaN or Infinity, so a
loss that diverged is written as null. What the twins print about a run (each epoch's line,
the summary, the predictions beside the true labels) is here too, so both print the same.
"""

import argparse
import contextlib
import json
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from torch.utils.data import Dataset

from shared.ranks import global_rank
from shared.run_end import BadInput, when_stopped


@dataclass
class RunRecord:
    example: str
    implementation: str  # "plain", "fabric" or "lightning"
    config: dict
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    seconds: float = 0.0  # wall time of the training + validation loop (for Lightning: trainer.fit)
    test: dict | None = None  # --test: {"test_loss": float, "test_accuracy": float}
    predictions: list[int] | None = None  # --predict N: the predicted labels of the first N test samples

    @classmethod
    def start(cls, example: str, implementation: str, args: argparse.Namespace) -> "RunRecord":
        record = cls(example, implementation, config=dict(vars(args)))
        when_stopped(lambda: record.write(args))  # a run that stops early keeps its steps
        return record

    @contextlib.contextmanager
    def timed(self) -> Iterator[None]:
        """Time what runs inside `with record.timed():` (the training loop, or trainer.fit) into `seconds`."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds = time.perf_counter() - start

    def end_epoch(self, epoch: int, val_loss: float, val_accuracy: float) -> str:
        """Keep one epoch's validation metrics; return the line every twin prints for it."""
        self.val_loss.append(val_loss)
        self.val_accuracy.append(val_accuracy)
        return f"epoch {epoch}: val_loss {val_loss:.4f}, val_accuracy {val_accuracy:.4f}"

    def summary(self) -> str:
        """One line for the terminal: what a learner wants to see at the end of a run."""
        if not self.val_loss:
            return f"{self.implementation}: {len(self.train_loss)} steps, no validation"
        return (
            f"{self.implementation}: {len(self.train_loss)} steps, last train_loss {self.train_loss[-1]:.4f}, "
            f"val_loss {self.val_loss[-1]:.4f}, val_accuracy {self.val_accuracy[-1]:.4f}, {self.seconds:.1f} s"
        )

    def finish(self, args: argparse.Namespace) -> "RunRecord":
        """The end of every twin's main(): print the summary line, write `--metrics-out` (DDP: rank 0 only)."""
        if global_rank() == 0:
            print(self.summary())
        self.write(args)
        return self

    def write(self, args: argparse.Namespace) -> None:
        """Write the JSON to `--metrics-out`, unless there is none or this is a `--dry-run`."""
        if not args.metrics_out or args.dry_run or global_rank() > 0:  # DDP: rank 0 writes it
            return
        path = Path(args.metrics_out)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(_finite_or_null(asdict(self)), indent=1, allow_nan=False) + "\n")
        except OSError as error:
            raise BadInput(f"cannot write --metrics-out {path}: {error.strerror or error}; pick a writable path") from None


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
    """Print each predicted label beside the true one, as every twin of step 2 does for `--predict N`."""
    print("sample  predicted  true")
    for index, (predicted, (_, label)) in enumerate(zip(predictions, dataset)):
        print(f"{index:6}  {predicted:9}  {int(label):4}{'' if predicted == int(label) else '  <- wrong'}")
