"""The record of one run, filled the same way by both twins and written as JSON.

Schema (`--metrics-out PATH`), identical for both implementations:
    {"example": str, "implementation": "plain" | "lightning", "config": {flag: value},
     "train_loss": [float per optimizer step], "val_loss": [float per epoch],
     "val_accuracy": [float per epoch], "seconds": float,
     "test": {"test_loss": float, "test_accuracy": float} or null, "predictions": [int] or null}
With --accumulate-grad-batches K > 1, "train_loss" has one float per batch (K per step),
each the loss of that batch as training_step logged it.
Floats are written with Python's shortest round-trip repr, so a float32 loss read back
from the JSON is the same number, bit for bit. Standard JSON has no NaN or Infinity, so a
loss that diverged is written as null.

Where one run writes (`claim_run_folders`): its own `version_N` folders, numbered as
Lightning's `TensorBoardLogger` numbers them, in both twins:
    LOG_DIR/EXAMPLE/{plain,lightning}/version_N/         TensorBoard events (and lr_find.png)
    CHECKPOINT_DIR/EXAMPLE/{plain,lightning}/version_N/  best.ckpt, last.ckpt
so a rerun never appends to the previous run's event files or replaces its checkpoints.
"""

import argparse
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from torch.utils.data import Dataset

from shared.cli import SAVE_ON_STOP, BadInput, global_rank


@dataclass
class RunRecord:
    example: str
    implementation: str  # "plain" or "lightning"
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
        SAVE_ON_STOP[:] = [lambda: record.write(args)]  # a run that diverges still keeps its steps
        return record

    def end_epoch(self, epoch: int, val_loss: float, val_accuracy: float) -> str:
        """Keep one epoch's validation metrics; return the line both twins print for it."""
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
    """Print each predicted label beside the true one, as both twins of step 2 do for `--predict N`."""
    print("sample  predicted  true")
    for index, (predicted, (_, label)) in enumerate(zip(predictions, dataset)):
        print(f"{index:6}  {predicted:9}  {int(label):4}{'' if predicted == int(label) else '  <- wrong'}")


def plot_losses(plain: dict, lightning: dict, path: str | Path | None = None,
                labels: tuple[str, str] = ("plain PyTorch", "Lightning")):
    """Both twins' per-step training losses on one chart; the title gives the largest difference.

    `plain` and `lightning` are metrics records (`--metrics-out` JSON, or `asdict(record)`).
    `labels` name the two curves in the legend. Returns the matplotlib Figure, saved as a
    PNG at `path` when given. A bare Figure draws
    with the Agg backend: no window, no pyplot state, so it works in scripts and tests.
    """
    from matplotlib.figure import Figure

    steps = len(plain["train_loss"])
    same_length = steps == len(lightning["train_loss"])
    largest = max((abs(a - b) for a, b in zip(plain["train_loss"], lightning["train_loss"])), default=0.0)
    figure = Figure(figsize=(7, 3.5), layout="constrained")
    ax = figure.subplots()
    ax.plot(plain["train_loss"], label=labels[0], linewidth=3, alpha=0.6)
    ax.plot(lightning["train_loss"], label=labels[1], linestyle="--", color="black", linewidth=1)
    ax.set_xlabel("training step")
    ax.set_ylabel("train_loss")
    ax.legend()
    difference = f"largest |difference| {largest:.3g}" if same_length else "step counts differ"
    ax.set_title(f"{plain['example']}: {steps} steps, {difference}")
    if path is not None:
        figure.savefig(path, format="png")
    return figure


# Where one run writes. TensorBoardLogger picks N by listing the folder and taking the largest
# number plus one, and creates the folder later, with the first event: two runs started at the
# same moment see the same list and share one N. `claim_version` takes the same number but
# creates the folder at once with `os.mkdir`, which fails if another run made it first, and then
# tries N + 1. The Lightning twin passes the number on: `TensorBoardLogger(version=N)`.
@dataclass
class RunFolders:
    version: int | None  # the N of `logs`; None for --dry-run (it writes nothing) and DDP's ranks > 0
    logs: Path | None  # LOG_DIR/EXAMPLE/IMPLEMENTATION/version_N
    checkpoints: Path | None  # CHECKPOINT_DIR/EXAMPLE/IMPLEMENTATION/version_N, with --checkpoint-dir


def claim_run_folders(args: argparse.Namespace, example: str, implementation: str) -> RunFolders:
    """Create this run's own `version_N` folders, and print where they are.

    Logs and checkpoints are numbered each under their own root, as TensorBoardLogger numbers
    only its own: the first run into a new --checkpoint-dir is its version_0. With the same
    folder for both, the run gets one version_N folder holding both.
    """
    if args.dry_run or global_rank() > 0:  # DDP: only rank 0 writes logs and checkpoints
        return RunFolders(None, None, None)
    log_root = Path(args.log_dir, example, implementation)
    version = claim_version(log_root)
    logs = checkpoints = log_root / f"version_{version}"
    checkpoint_root = None
    if getattr(args, "checkpoint_dir", None):  # step 2 only
        checkpoint_root = Path(args.checkpoint_dir, example, implementation)
    if checkpoint_root and checkpoint_root.resolve() != log_root.resolve():
        checkpoints = checkpoint_root / f"version_{claim_version(checkpoint_root)}"
    print(f"this run writes to {logs}" + (f" and {checkpoints}" if checkpoint_root and checkpoints != logs else ""))
    return RunFolders(version, logs, checkpoints if checkpoint_root else None)


def claim_version(root: Path) -> int:
    """The next free N under `root` (one past the largest, as TensorBoardLogger counts); creates ROOT/version_N."""
    root.mkdir(parents=True, exist_ok=True)
    version = 1 + max(_versions(root), default=-1)
    while True:
        try:
            (root / f"version_{version}").mkdir()  # atomic: fails if another run made it first
            return version
        except FileExistsError:  # another run took N a moment ago: try N + 1
            version += 1


def _versions(root: Path) -> list[int]:
    """The numbers of the `version_N` folders under `root`, as TensorBoardLogger reads them."""
    if not root.is_dir():
        return []
    names = (entry.name for entry in os.scandir(root) if entry.is_dir())
    return [int(name[8:]) for name in names if name.startswith("version_") and name[8:].isdigit()]
