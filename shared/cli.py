"""The command-line flags of all six files, defined once.

`parse_args("cnn_classifier")` gives both twins of that example the same flags with the
same defaults, so "the same flags" always means the same run. Every step takes the common
flags plus its own (shared/ladder.py lists them); a flag of another step is refused. Bad
values end the program with one line on stderr and exit status 2, never a traceback.

It also holds how every twin ends early (`exit_on_bad_input`): bad input, a loss that
diverged (`stop_if_diverged`, exit status 1) and Ctrl-C (exit status 1); and `global_rank`,
which process of a DDP run this is.
"""

import argparse
import contextlib
import math
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch

from shared.data import IMAGE_DATASETS, DataError

# Each example is one step of the ladder; its flags are the common ones plus its own.
EXAMPLES: dict[str, dict] = {
    "mnist_feedforward": dict(epochs=2, batch_size=100, lr=1e-3, hidden_size=500),  # the classic tutorial's numbers
    "cnn_classifier": dict(epochs=2, batch_size=64, lr=0.01, momentum=0.9, lr_step_gamma=0.7),  # gamma: pytorch/examples
    "sum_dataset": dict(epochs=5, batch_size=64, lr=1e-3, hidden_size=256, num_features=32, num_samples=10_000),
}
MAX_SEED = 2**32 - 1  # NumPy's limit, and so Lightning's seed_everything's
FLOAT32_MAX = torch.finfo(torch.float32).max  # the optimizers cast lr into the float32 weights' type
MAX_SIZE = 2**20  # --hidden-size, --num-features: a 784 x 2**20 layer is already 3 GB
MAX_SAMPLES = 10**8  # --num-samples
MAX_WORKERS = 64  # --num-workers: each one is a whole process


class BadInput(Exception):
    """A bad flag value or bad input file. The message is one line: the problem and the fix."""


class OneLineParser(argparse.ArgumentParser):
    """argparse prints the whole usage before an error; we print one line, then exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise BadInput(f"{message} (see --help)")


def _at_least(minimum: float, kind: type, maximum: float | None = None):
    def check(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind.__name__}") from None
        if not value >= minimum:  # `not >=` also rejects nan
            raise argparse.ArgumentTypeError(f"{text} is too small; it must be at least {minimum}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"{text} is too large; it must be at most {maximum:,}")
        return value

    return check


def _positive_float(text: str) -> float:
    value = _at_least(0.0, float)(text)
    if value == 0 or value > FLOAT32_MAX:  # also inf; 1e308 would overflow when the optimizer casts it
        raise argparse.ArgumentTypeError(f"{text} must be a positive number of at most {FLOAT32_MAX:.3g} (float32)")
    return value


def build_parser(example: str) -> argparse.ArgumentParser:
    """The parser for one example: the common flags, then that step's own; defaults from `EXAMPLES`."""
    parser = OneLineParser(prog=f"python -m {{plain_pytorch,lightning_version}}.{example}")
    parser.add_argument("--epochs", type=_at_least(1, int), help="passes over the training set")
    parser.add_argument("--batch-size", type=_at_least(1, int), help="samples per optimizer step")
    parser.add_argument("--lr", type=_positive_float, help="learning rate")
    parser.add_argument("--seed", type=_at_least(0, int), default=42, help=f"0..{MAX_SEED}")
    parser.add_argument("--data-dir", default="./data",
                        help="holds MNIST/raw/ or FashionMNIST/raw/ (torchvision's layout), or the files flat")
    parser.add_argument("--limit-train", type=_at_least(1, int), help="use the first N training samples")
    parser.add_argument("--limit-val", type=_at_least(1, int), help="use the first N validation samples")
    parser.add_argument("--dry-run", action="store_true", help="one train and one val batch, write nothing")
    parser.add_argument("--accelerator", choices=["auto", "cpu", "gpu"], default="auto")
    parser.add_argument("--metrics-out", metavar="PATH", help="write the run's losses and accuracies as JSON")
    parser.add_argument("--log-dir", default="runs", help="TensorBoard files go to LOG_DIR/EXAMPLE/{plain,lightning}")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    if example in ("mnist_feedforward", "cnn_classifier"):
        parser.add_argument("--dataset", choices=list(IMAGE_DATASETS), default="mnist",
                            help="MNIST's digits, or Zalando's Fashion-MNIST clothes (the same format)")
    if example in ("mnist_feedforward", "sum_dataset"):
        parser.add_argument("--hidden-size", type=_at_least(1, int, MAX_SIZE), help="width of the hidden layer(s)")
    if example == "cnn_classifier":  # step 2: a real training job
        parser.add_argument("--momentum", type=_at_least(0.0, float), help="SGD momentum")
        parser.add_argument("--lr-step-gamma", type=_positive_float, help="StepLR: multiply the lr by this each epoch")
        parser.add_argument("--checkpoint-dir", help="save best.ckpt (lowest val_loss) and last.ckpt here")
        parser.add_argument("--resume", metavar="PATH", help="continue training from this twin's checkpoint")
        parser.add_argument("--test", action="store_true", help="after training, evaluate on the test split")
        parser.add_argument("--predict", type=_at_least(1, int), metavar="N", help="then predict N test images")
        parser.add_argument("--devices", type=_at_least(1, int, MAX_WORKERS), default=1,
                            help="train on N processes per machine at once (DDP); the plain twin needs torchrun")
        parser.add_argument("--num-nodes", type=_at_least(1, int, MAX_WORKERS), default=1,
                            help="machines taking part (DDP); started by torchrun --nnodes or SLURM")
    if example == "sum_dataset":  # step 3: Lightning's extras
        parser.add_argument("--num-features", type=_at_least(1, int, MAX_SIZE), help="length of each vector")
        parser.add_argument("--num-samples", type=_at_least(5, int, MAX_SAMPLES), help="train + val; the last 1/5 validates")
        parser.add_argument("--num-workers", type=_at_least(0, int, MAX_WORKERS), default=0,
                            help="DataLoader worker processes")
        parser.add_argument("--deterministic", action="store_true", help="torch.use_deterministic_algorithms(True)")
        parser.add_argument("--early-stopping-patience", type=_at_least(1, int), help="stop after N epochs without improvement")
        parser.add_argument("--early-stopping-min-delta", type=_at_least(0.0, float), default=0.0, help="smallest improvement")
        parser.add_argument("--find-lr", action="store_true", help="run the LR range test first, train with its suggestion")
        parser.add_argument("--find-batch-size", nargs="?", const="power", choices=["power", "binsearch"], help="search first")
        parser.add_argument("--gradient-clip-val", type=_positive_float, help="clip gradients at this norm or value")
        parser.add_argument("--gradient-clip-algorithm", choices=["norm", "value"], default="norm")
        parser.add_argument("--precision", choices=["32-true", "bf16-mixed", "16-mixed"], default="32-true")
        parser.add_argument("--accumulate-grad-batches", type=_at_least(1, int), default=1, help="batches per optimizer step")
    parser.set_defaults(**EXAMPLES[example])
    return parser


def parse_args(example: str, argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and check the flags of `example`; raises `BadInput` on a bad value."""
    parser = build_parser(example)
    args = parser.parse_args(argv)
    if args.seed > MAX_SEED:
        parser.error(f"argument --seed: {args.seed} is too large; it must be at most {MAX_SEED}")
    if args.accelerator == "gpu" and not (torch.cuda.is_available() or torch.backends.mps.is_available()):
        parser.error("argument --accelerator: gpu asked for, but torch sees no CUDA or MPS GPU; use --accelerator cpu")
    if getattr(args, "precision", None) == "16-mixed" and not torch.cuda.is_available():
        parser.error("argument --precision: 16-mixed needs a CUDA GPU (its GradScaler path); use bf16-mixed on CPU")
    if example == "sum_dataset" and (args.find_lr or args.find_batch_size):
        finder = "--find-lr" if args.find_lr else "--find-batch-size"
        clashing = [flag for flag, on in (("--gradient-clip-val", args.gradient_clip_val is not None),
                                          ("--accumulate-grad-batches", args.accumulate_grad_batches > 1)) if on]
        if clashing:  # the hand-written finders leave these out (see plain_pytorch/by_hand/)
            parser.error(f"argument {finder}: not together with {clashing[0]}; run the finder alone, then train with its result")
    last_lr_log = math.log(args.lr) + (args.epochs - 1) * math.log(getattr(args, "lr_step_gamma", 1))  # no overflow
    if last_lr_log > math.log(FLOAT32_MAX):
        parser.error(f"argument --lr-step-gamma: {args.lr_step_gamma} over {args.epochs} epochs takes the lr past "
                     f"{FLOAT32_MAX:.3g}, which float32 cannot hold; pick a gamma nearer 1")
    if getattr(args, "resume", None):
        _check_resume(parser, args.resume, args.epochs)
    if getattr(args, "devices", 1) * getattr(args, "num_nodes", 1) > 1 and (args.test or args.predict):  # as Lightning advises
        parser.error(f"argument --devices: --test and --predict run on one process, so that each image counts once "
                     f"(DDP's sampler repeats a few); train with --devices {args.devices} --checkpoint-dir DIR, then "
                     f"resume from its last.ckpt with --devices 1 --epochs one more --test")
    for flag, folder in (("--log-dir", args.log_dir), ("--checkpoint-dir", getattr(args, "checkpoint_dir", None)),
                         ("--metrics-out", args.metrics_out and str(Path(args.metrics_out).parent))):
        if folder and not _can_write_into(Path(folder)):  # found now, not after the whole run
            parser.error(f"argument {flag}: cannot write into {folder}; pick a folder you can write to")
    if args.metrics_out and not _can_write_file(Path(args.metrics_out)):
        parser.error(f"argument --metrics-out: cannot write the file {args.metrics_out}; pick a file path you can write")
    return args


def _check_resume(parser: argparse.ArgumentParser, path: str, epochs: int) -> None:
    """Refuse a --resume file that is missing, does not load safely, or leaves no epoch to train."""
    if not Path(path).is_file():
        parser.error(f"argument --resume: no checkpoint file at {path}; pass a .ckpt that --checkpoint-dir wrote")
    try:  # weights_only: tensors and plain data only, so a checkpoint cannot run code while loading
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        parser.error(f"argument --resume: {path} is not a checkpoint that loads safely "
                     f"({type(error).__name__}); pass a .ckpt that --checkpoint-dir wrote")
    if not isinstance(checkpoint, dict):
        parser.error(f"argument --resume: {path} holds no checkpoint; pass a .ckpt that --checkpoint-dir wrote")
    last = checkpoint.get("epoch")  # both twins store the 0-based epoch just finished
    done = last + 1 if isinstance(last, int) else 0
    if epochs <= done:  # else both twins would silently train nothing
        parser.error(f"argument --epochs: {path} ends after epoch {done} already; pass --epochs above {done} "
                     "to train on")


def check_resumable(checkpoint: dict, needed: tuple[str, ...], path: str) -> None:
    """Refuse a checkpoint that loads but lacks what resuming needs (say, the optimizer or random state)."""
    missing = [key for key in needed if key not in checkpoint]
    if missing:  # else a KeyError mid-resume, or (Lightning) a silent resume without the random state
        raise BadInput(f"--resume {path}: lacks {', '.join(missing)}, which resuming needs; pass a last.ckpt or "
                       "best.ckpt that --checkpoint-dir wrote")


def _can_write_into(folder: Path) -> bool:
    """Whether files can be written in `folder`, or in its nearest existing parent, which will hold it.

    Tried for real, with a temporary file that vanishes at once: `os.access` answers yes to root
    even where the kernel refuses every write (/proc, a read-only mount). Nothing is created.
    """
    while not folder.exists():
        folder = folder.parent
    try:
        tempfile.TemporaryFile(dir=folder).close()
    except OSError:  # also NotADirectoryError: a file where a folder should be
        return False
    return True


def _can_write_file(path: Path) -> bool:
    """Whether `path` can be (over)written: not a folder, and an existing file opens for writing."""
    if not path.exists():
        return True  # _can_write_into checked its folder
    try:
        with open(path, "a"):  # "a" opens for writing without changing a byte
            return path.is_file()
    except OSError:
        return False


def check_weights_fit(state_dict: dict, model: torch.nn.Module, path: str) -> None:
    """Refuse, in one line, a checkpoint whose weights do not fit `model` (another example, another width)."""
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    found = {key: tuple(value.shape) for key, value in state_dict.items()}
    if found != expected:
        raise BadInput(f"--resume {path}: its weights do not fit this model (another example, or other "
                       "--hidden-size/--num-features?); resume with the flags it was trained with")


def global_rank() -> int:
    """This process's rank among DDP's processes (0 when alone), read as Lightning's rank_zero_only reads it.

    torchrun sets RANK; Lightning's launcher sets LOCAL_RANK for the processes it starts.
    """
    for name in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if name in os.environ:
            return int(os.environ[name])
    return 0


class Diverged(Exception):
    """The training loss became nan or infinite. The message is one line: where, and what to change."""


def stop_if_diverged(loss: torch.Tensor, step: int, lr: float) -> None:
    """Stop the run if `loss`, the loss of optimizer step `step` (counted from 1), is nan or infinite.

    Training on would only spread the nan through every weight. Both twins check after the
    step, so both record the same steps; the run ends before validating or saving a checkpoint,
    so last.ckpt keeps the last good epoch. Under DDP each process has its own loss, and all
    must stop at the same step (a process that trained on would wait forever for the others
    in its next all-reduce), so they agree first: one more all-reduce a step.
    """
    diverged = (~torch.isfinite(loss.detach())).to(torch.float32)
    if torch.distributed.is_initialized():
        torch.distributed.all_reduce(diverged)  # how many processes diverged at this step
    if diverged.item() > 0:
        where = f"is {loss.item()}" if not torch.isfinite(loss) else "is not finite in another process"
        raise Diverged(f"train_loss {where} at step {step}: training diverged, so it stopped there; "
                       f"lower --lr (it was {lr:g})")


# What a run that stops early must still save: RunRecord.start puts its --metrics-out write here.
SAVE_ON_STOP: list = []
INTERRUPTED = "Detected KeyboardInterrupt, attempting graceful shutdown ..."  # Lightning's words


@contextlib.contextmanager
def exit_on_bad_input() -> Iterator[None]:
    """How every twin ends early: one line, no traceback.

    Bad input (`BadInput`, `DataError`, sizes too large for memory): one line on stderr, exit
    status 2. A diverged loss: the steps that ran go to --metrics-out, one line on stderr, exit
    status 1. Ctrl-C: exit status 1 after one line, in Lightning's words, as Lightning's
    Trainer ends a run it interrupts (lightning/pytorch/trainer/call.py).
    """
    try:
        yield
    except (BadInput, DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except Diverged as error:  # under DDP every process stops at this step: one of them says so
        for save in SAVE_ON_STOP:
            save()
        if global_rank() == 0:
            print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:  # the Lightning twins' Trainer catches it first, inside fit/test/predict
        print(f"\n{INTERRUPTED}")
        sys.exit(1)
    except (MemoryError, RuntimeError) as error:
        if not isinstance(error, MemoryError) and "can't allocate memory" not in str(error):
            raise  # a real bug: keep its traceback
        print("error: not enough memory for these sizes; lower --hidden-size, --num-features, --num-samples or "
              "--batch-size", file=sys.stderr)
        sys.exit(2)
