"""The command-line flags of all nine files, defined once.

`parse_args("cnn_classifier")` gives the three twins of that example the same flags with the
same defaults, so "the same flags" always means the same run. Every step takes the common
flags plus its own; a flag of another step is refused with a line that names its step. Bad
values raise `BadInput` (shared/exits.py turns it into one line on stderr and exit status 2),
and output paths are tried before the run starts, so no run's results are thrown away at the
end. `--help` shows every flag's default.
"""

import argparse
import math
import os
import re
import tempfile
from pathlib import Path

import torch

from shared.data import IMAGE_DATASETS
from shared.exits import BadInput

# Each example is one step of the ladder, in order; its flags are the common ones plus its own.
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


class OneLineParser(argparse.ArgumentParser):
    """argparse prints the whole usage before an error; we raise one line (exit status 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise BadInput(f"{message} (see --help)")


class _ShowDefaults(argparse.HelpFormatter):
    """--help ends each flag's line with its default, as `(default: 42)`."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ""
        if action.option_strings and action.nargs != 0 and "(default:" not in help_text:
            default = "none" if action.default is None else action.default
            help_text += f" (default: {default})"
        return help_text


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
    parser = OneLineParser(prog=f"python -m {{plain_pytorch,fabric_version,lightning_version}}.{example}",
                           formatter_class=_ShowDefaults)
    parser.add_argument("--epochs", type=_at_least(1, int), help="passes over the training set")
    parser.add_argument("--batch-size", type=_at_least(1, int), help="samples per optimizer step")
    parser.add_argument("--lr", type=_positive_float, help="learning rate")
    parser.add_argument("--seed", type=_at_least(0, int), default=42, help=f"0..{MAX_SEED}")
    parser.add_argument("--data-dir", help="holds MNIST/raw/ or FashionMNIST/raw/ (torchvision's layout), or the "
                        "files flat (default: the repository's data/; for Fashion-MNIST, also Debian's "
                        "/usr/share/datasets/fashion-mnist)")
    parser.add_argument("--limit-train", type=_at_least(1, int), help="use the first N training samples")
    parser.add_argument("--limit-val", type=_at_least(1, int), help="use the first N validation samples")
    parser.add_argument("--dry-run", action="store_true", help="one train and one val batch, write nothing")
    parser.add_argument("--accelerator", choices=["auto", "cpu", "gpu"], default="auto",
                        help="where to train: auto picks a CUDA or MPS GPU when there is one")
    parser.add_argument("--metrics-out", metavar="PATH", help="write the run's losses and accuracies as JSON")
    parser.add_argument("--log-dir", default="runs", help="TensorBoard files go to LOG_DIR/EXAMPLE/{plain,fabric,lightning}")
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
        parser.add_argument("--gradient-clip-algorithm", choices=["norm", "value"], default="norm",
                            help="clip the gradients' total norm, or each value")
        parser.add_argument("--precision", choices=["32-true", "bf16-mixed", "16-mixed"], default="32-true",
                            help="mixed precision: bf16-mixed on CPU, 16-mixed on CUDA")
        parser.add_argument("--accumulate-grad-batches", type=_at_least(1, int), default=1, help="batches per optimizer step")
    parser.set_defaults(**EXAMPLES[example])
    return parser


def parse_args(example: str, argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and check the flags of `example`; raises `BadInput` on a bad value."""
    parser = build_parser(example)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        parser.error(_not_this_steps(example, unknown))
    for flag in PATH_FLAGS:  # the same rule in every twin: ~ and $VAR expanded, as a shell would
        if getattr(args, flag, None) is not None:
            setattr(args, flag, _path(parser, flag, getattr(args, flag)))
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
        if clashing:  # the hand-written finders leave these out (see by_hand/)
            parser.error(f"argument {finder}: not together with {clashing[0]}; run the finder alone, then train with its result")
    last_lr_log = math.log(args.lr) + (args.epochs - 1) * math.log(getattr(args, "lr_step_gamma", 1))  # no overflow
    if last_lr_log > math.log(FLOAT32_MAX):
        parser.error(f"argument --lr-step-gamma: {args.lr_step_gamma} over {args.epochs} epochs takes the lr past "
                     f"{FLOAT32_MAX:.3g}, which float32 cannot hold; pick a gamma nearer 1")
    if getattr(args, "resume", None) and not Path(args.resume).is_file():  # read and checked where it resumes
        parser.error(f"argument --resume: no checkpoint file at {args.resume}; pass a .ckpt that --checkpoint-dir "
                     "wrote")
    if getattr(args, "devices", 1) * getattr(args, "num_nodes", 1) > 1 and (args.test or args.predict):  # as Lightning advises
        parser.error(f"argument --devices: --test and --predict run on one process, so that each image counts once "
                     f"(DDP's sampler repeats a few); train with --devices {args.devices} --checkpoint-dir DIR, then "
                     f"resume from its last.ckpt with --devices 1 --epochs one more --test")
    world = os.environ.get("WORLD_SIZE")  # set by torchrun (and by Lightning for the processes it starts)
    nodes = getattr(args, "num_nodes", 1)
    if world and int(world) != getattr(args, "devices", 1) * nodes:
        parser.error(f"argument --devices: {args.devices} x {nodes} machine(s) asked for, but the launcher started "
                     f"{world} processes; pass --devices and --num-nodes that multiply to {world}")
    if nodes > 1 and not world and "SLURM_NTASKS" not in os.environ:  # else it waits for machines that never come
        parser.error(f"argument --num-nodes: {nodes} machines need a launcher on each of them; start this command "
                     f"with torchrun --nnodes {nodes} --nproc-per-node {args.devices} --rdzv-endpoint HOST:PORT, or srun")
    for flag, folder in (("--log-dir", args.log_dir), ("--checkpoint-dir", getattr(args, "checkpoint_dir", None)),
                         ("--metrics-out", args.metrics_out and str(Path(args.metrics_out).parent))):
        problem = folder and _cannot_write_into(Path(folder))  # found now, not after the whole run
        if problem:
            parser.error(f"argument {flag}: cannot write into {folder} ({problem}); pick a folder you can write to")
    if args.metrics_out:
        _check_metrics_out(parser, args)
    return args


# The flags that name a path, and how the twins read them: the same way in both.
PATH_FLAGS = ("data_dir", "log_dir", "checkpoint_dir", "resume", "metrics_out")


def _path(parser: argparse.ArgumentParser, flag: str, text: str) -> str:
    """`text` with ~ and $VAR expanded; an empty path, a URL or a name that is not UTF-8 is refused."""
    name = "--" + flag.replace("_", "-")
    if not text.strip():
        parser.error(f"argument {name}: an empty path; name a folder or file (. is the current folder)")
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text):
        parser.error(f"argument {name}: {text} is a URL; the twins read and write local paths only")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        parser.error(f"argument {name}: {text.encode('utf-8', 'surrogateescape')!r} is not valid UTF-8; "
                     "pick a name in UTF-8")
    return os.path.expandvars(os.path.expanduser(text))


def _check_metrics_out(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """--metrics-out must be a file the run may replace: never an input, a folder, or another output."""
    path = Path(args.metrics_out)
    try:
        target = path.resolve()
        kind = path.stat().st_mode if path.exists() else None
    except (OSError, RuntimeError) as error:  # a name too long, a symlink loop
        parser.error(f"argument --metrics-out: {args.metrics_out}: {getattr(error, 'strerror', None) or error}")
    if kind is not None and not path.is_file():
        what = "a folder" if path.is_dir() else "not a regular file (a pipe, a device)"
        parser.error(f"argument --metrics-out: {args.metrics_out} is {what}; pick a file path")
    for flag in ("resume", "data_dir", "log_dir", "checkpoint_dir"):
        other = getattr(args, flag, None)
        name = "--" + flag.replace("_", "-")
        if other and Path(other).resolve() == target:
            parser.error(f"argument --metrics-out: {args.metrics_out} is the {name} path, which the run reads or "
                         "fills; pick another file")
        if other and target in Path(other).resolve().parents:
            parser.error(f"argument --metrics-out: {args.metrics_out} would hold the {name} folder; pick a file path")
    if kind is not None and not _can_write_file(path):
        parser.error(f"argument --metrics-out: cannot write the file {args.metrics_out}; pick a file path you can "
                     "write")


def _not_this_steps(example: str, unknown: list[str]) -> str:
    """Why `unknown` was refused: a flag of another step says which step it belongs to."""
    flag = next((token.split("=")[0] for token in unknown if token.startswith("--")), None)
    for number, other in enumerate(EXAMPLES, start=1):
        if flag and other != example and flag in build_parser(other)._option_string_actions:
            return f"{flag} belongs to step {number}, {other}; use it with python -m plain_pytorch.{other}"
    return f"unrecognized arguments: {' '.join(unknown)}"


def _cannot_write_into(folder: Path) -> str | None:
    """Why files cannot be written in `folder`, or in its nearest existing parent, which will hold it; None if they can.

    Tried for real, with a temporary file that vanishes at once: `os.access` answers yes to root
    even where the kernel refuses every write (/proc, a read-only mount). Nothing is created.
    """
    try:
        os.stat(folder)  # a name too long, or a symlink loop, is refused here, not mid-run
    except FileNotFoundError:
        pass
    except OSError as error:
        return error.strerror
    while not folder.exists():
        if folder.is_symlink():  # it would be created through a link that points nowhere
            return f"{folder} is a symlink to nothing"
        folder = folder.parent
    try:
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as error:  # also NotADirectoryError: a file where a folder should be
        return error.strerror
    return None


def _can_write_file(path: Path) -> bool:
    """Whether the regular file `path` opens for writing."""
    try:
        with open(path, "a"):  # "a" opens for writing without changing a byte
            return path.is_file()
    except OSError:
        return False
