"""The command-line flags of every twin, defined once: the flag table and its parser.

`parse_args("cnn_classifier", "plain")` gives the three twins of that example the same flags
with the same defaults, so "the same flags" always means the same run. Every step takes the
common flags plus its own; a flag of another step is refused with a line that names its step
and the command that takes it. Bad values raise `BadInput` (shared/run_end.py turns it into
one line on stderr and exit status 2); shared/machine_checks.py then checks the flags against
the machine (paths, devices, the launcher) before the run starts, so no run's results are
thrown away at the end. `--help` opens with what the twin trains and shows every flag's
default.
"""

import argparse
import math

import torch

from shared import machine_checks
from shared.data import IMAGE_DATASETS
from shared.one_line_parser import OneLineParser
from shared.registry import EXAMPLES, FOLDERS, TWINS, twin_named
from shared.run_folders import newest_last_checkpoint

# Each example's own defaults (shared/registry.py lists the examples, in ladder order).
DEFAULTS: dict[str, dict] = {
    # the classic tutorial's numbers
    "mnist_feedforward": dict(epochs=2, batch_size=100, lr=1e-3, hidden_size=500),
    # gamma: pytorch/examples' mnist
    "cnn_classifier": dict(epochs=2, batch_size=64, lr=0.01, momentum=0.9, lr_step_gamma=0.7),
    "sum_dataset": dict(epochs=5, batch_size=64, lr=1e-3, hidden_size=256, num_features=32,
                        num_samples=10_000),
    # nanoGPT's shakespeare_char recipe, cut down to run in seconds on a CPU
    # small enough to learn visibly on 2 CPU cores in well under a minute
    "tiny_gpt": dict(max_steps=300, batch_size=16, lr=6e-3, context=64, warmup_steps=30,
                     weight_decay=0.1, eval_interval=100, eval_batches=8),
}
MAX_SEED = 2**32 - 1  # NumPy's limit, and so Lightning's seed_everything's
FLOAT32_MAX = torch.finfo(torch.float32).max  # the optimizers cast lr to the float32 weights' type
MAX_SIZE = 2**20  # --hidden-size, --num-features: a 784 x 2**20 layer is already 3 GB
MAX_SAMPLES = 10**8  # --num-samples
MAX_WORKERS = 64  # --num-workers: each one is a whole process


class _ShowDefaults(argparse.HelpFormatter):
    """--help ends each flag's line with its default, as `(default: 42)`."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ""
        if action.option_strings and action.nargs != 0 and "(default:" not in help_text:
            default = "none" if action.default is None else action.default
            help_text += f" (default: {default})"
        return help_text


_NUMBER = {int: "a whole number", float: "a number"}  # for the refusal line

def _at_least(minimum: float, kind: type, maximum: float | None = None):
    def check(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {_NUMBER[kind]}") from None
        if not value >= minimum:  # `not >=` also rejects nan
            raise argparse.ArgumentTypeError(f"{text} is too small; it must be at least {minimum}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"{text} is too large; it must be at most {maximum:,}")
        return value

    return check


def _positive_float(text: str) -> float:
    value = _at_least(0.0, float)(text)
    if value == 0 or value > FLOAT32_MAX:  # also inf; 1e308 would overflow when cast to float32
        raise argparse.ArgumentTypeError(f"{text} must be a positive number of at most "
                                         f"{FLOAT32_MAX:.3g} (float32)")
    return value


def build_parser(example: str, package: str | None = None,
                 about: str | None = None) -> argparse.ArgumentParser:
    """The parser for one example: the common flags, then that step's own; defaults from
    `DEFAULTS`. `package` names the twin in the usage line, `about` (its docstring) opens
    `--help` with its first line."""
    packages = package or "{" + ",".join(twin.package for twin in TWINS) + "}"
    parser = OneLineParser(prog=f"python -m {packages}.{example}",
                           description=about.strip().splitlines()[0] if about else None,
                           formatter_class=_ShowDefaults)
    add = parser.add_argument
    by_steps = example == "tiny_gpt"  # step 4 counts optimizer steps, not passes over the data
    if not by_steps:
        add("--epochs", type=_at_least(1, int), help="passes over the training set")
    add("--batch-size", type=_at_least(1, int), help="samples per optimizer step")
    add("--lr", type=_positive_float, help="learning rate")
    add("--seed", type=_at_least(0, int), default=42, help=f"0..{MAX_SEED}")
    if by_steps:
        add("--data-dir", help="holds devils_dictionary.txt, the default --corpus (default: the "
            "repository's data/)")
    else:
        add("--data-dir", help="holds MNIST/raw/ or FashionMNIST/raw/ (torchvision's layout), or "
            "the files flat (default: the repository's data/; for Fashion-MNIST, also Debian's "
            "/usr/share/datasets/fashion-mnist)")
    if not by_steps:
        add("--limit-train", type=_at_least(1, int), help="use the first N training samples")
        add("--limit-val", type=_at_least(1, int), help="use the first N validation samples")
    add("--dry-run", action="store_true", help="one train and one val batch, write nothing")
    add("--accelerator", choices=["auto", "cpu", "gpu"], default="auto",
        help="where to train: auto picks a CUDA or MPS GPU when there is one")
    add("--metrics-out", metavar="PATH", help="write the run's losses and accuracies as JSON")
    add("--log-dir", default="runs",
        help="TensorBoard files go to LOG_DIR/EXAMPLE/{" + ",".join(FOLDERS.values()) + "}")
    add("--no-progress", action="store_true", help="no progress bar")
    if example in ("mnist_feedforward", "cnn_classifier"):
        add("--dataset", choices=list(IMAGE_DATASETS), default="mnist",
            help="MNIST's digits, or Zalando's Fashion-MNIST clothes (the same format)")
    if example in ("mnist_feedforward", "sum_dataset"):
        add("--hidden-size", type=_at_least(1, int, MAX_SIZE), help="width of the hidden layer(s)")
    if example == "cnn_classifier":  # step 2: a real training job
        add("--momentum", type=_at_least(0.0, float), help="SGD momentum")
        add("--lr-step-gamma", type=_positive_float,
            help="StepLR: multiply the lr by this each epoch")
        add("--checkpoint-dir", help="save best.ckpt (lowest val_loss) and last.ckpt here")
        add("--resume", metavar="PATH", help="continue training from this twin's checkpoint; "
            "auto: from its newest last.ckpt in --checkpoint-dir, if any")
        add("--test", action="store_true", help="after training, evaluate on the test split")
        add("--predict", type=_at_least(1, int), metavar="N", help="then predict N test images")
        add("--devices", type=_at_least(1, int, MAX_WORKERS), default=1,
            help="train on N processes per machine at once (DDP); the plain twin needs torchrun")
        add("--num-nodes", type=_at_least(1, int, MAX_WORKERS), default=1,
            help="machines taking part (DDP); started by torchrun --nnodes or SLURM")
    if example == "sum_dataset":  # step 3: Lightning's extras
        add("--num-features", type=_at_least(1, int, MAX_SIZE), help="length of each vector")
        add("--num-samples", type=_at_least(5, int, MAX_SAMPLES),
            help="train + val; the last 1/5 validates")
        add("--num-workers", type=_at_least(0, int, MAX_WORKERS), default=0,
            help="DataLoader worker processes")
        add("--deterministic", action="store_true",
            help="torch.use_deterministic_algorithms(True)")
        add("--early-stopping-patience", type=_at_least(1, int),
            help="stop after N epochs without improvement")
        add("--early-stopping-min-delta", type=_at_least(0.0, float), default=0.0,
            help="smallest improvement")
        add("--find-lr", action="store_true",
            help="run the LR range test first, train with its suggestion")
        add("--find-batch-size", nargs="?", const="power", choices=["power", "binsearch"],
            help="search first")
        add("--gradient-clip-val", type=_positive_float,
            help="clip gradients at this norm or value")
        add("--gradient-clip-algorithm", choices=["norm", "value"], default="norm",
            help="clip the gradients' total norm, or each value")
        add("--precision", choices=["32-true", "bf16-mixed", "16-mixed"], default="32-true",
            help="mixed precision: bf16-mixed on CPU, 16-mixed on CUDA")
        add("--accumulate-grad-batches", type=_at_least(1, int), default=1,
            help="batches per optimizer step")
    if example == "tiny_gpt":  # step 4: how people train models today
        add("--max-steps", type=_at_least(1, int, MAX_SAMPLES), help="optimizer steps to train")
        add("--corpus", metavar="FILE", help="a UTF-8 text to train on (default: "
            "devils_dictionary.txt in --data-dir)")
        add("--context", type=_at_least(1, int, 4096), help="characters the model reads at once")
        add("--warmup-steps", type=_at_least(0, int), help="the lr rises linearly over these steps")
        add("--weight-decay", type=_at_least(0.0, float), help="AdamW's, on the linear weights")
        add("--eval-interval", type=_at_least(1, int), help="validate every N steps")
        add("--eval-batches", type=_at_least(1, int), help="validation batches each time")
        add("--checkpoint-dir", help="save a checkpoint every --checkpoint-every steps here")
        add("--checkpoint-every", type=_at_least(1, int), default=100, metavar="N",
            help="steps between checkpoints")
        add("--resume", metavar="PATH", help="continue training from this twin's checkpoint")
        add("--precision", choices=["32-true", "bf16-mixed"], default="32-true",
            help="bf16-mixed: autocast to bfloat16 on the CPU")
        add("--sample-length", type=_at_least(0, int, 100_000), default=300,
            help="characters to sample at the end")
        add("--prompt", default="\n", help="the text the sample continues (default: a new line)")
        add("--temperature", type=_positive_float, default=0.8, help="below 1: safer characters")
        add("--compile", action="store_true", help="torch.compile the model")
        add("--devices", type=_at_least(1, int, MAX_WORKERS), default=1,
            help="train on N processes per machine at once (DDP); the plain twin needs torchrun")
        add("--num-nodes", type=_at_least(1, int, MAX_WORKERS), default=1,
            help="machines taking part (DDP); started by torchrun --nnodes or SLURM")
    parser.set_defaults(**DEFAULTS[example])
    return parser


def flag_names(example: str) -> list[str]:
    """The flags of `example`, in the order `--help` lists them (without -h and --help)."""
    actions = build_parser(example)._actions
    return [name for action in actions for name in action.option_strings
            if name not in ("-h", "--help")]


def parse_args(example: str, twin: str, argv: list[str] | None = None,
               about: str | None = None) -> argparse.Namespace:
    """Parse and check the flags of `example` for `twin` ("plain", "fabric" or "lightning");
    raises `BadInput` on a bad value. `about`, the twin's docstring, opens `--help`."""
    package = twin_named(twin).package
    parser = build_parser(example, package, about)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        parser.error(_not_this_steps(example, package, unknown))
    machine_checks.expand_paths(parser, args)
    if getattr(args, "resume", None) == "auto":  # a restarted job goes on from where it stopped
        if not args.checkpoint_dir:
            parser.error("argument --resume: auto looks for last.ckpt in --checkpoint-dir; pass "
                         "--checkpoint-dir DIR too")
        args.resume = newest_last_checkpoint(args.checkpoint_dir, example, twin)
    if args.seed > MAX_SEED:
        parser.error(f"argument --seed: {args.seed} is too large; it must be at most {MAX_SEED}")
    if example == "sum_dataset" and (args.find_lr or args.find_batch_size):
        finder = "--find-lr" if args.find_lr else "--find-batch-size"
        clashing = [flag for flag, on in (
            ("--gradient-clip-val", args.gradient_clip_val is not None),
            ("--accumulate-grad-batches", args.accumulate_grad_batches > 1)) if on]
        if clashing:  # the hand-written finders leave these out (see by_hand/)
            parser.error(f"argument {finder}: not together with {clashing[0]}; run the finder "
                         "alone, then train with its result")
    if example == "tiny_gpt" and args.warmup_steps >= args.max_steps:
        parser.error(f"argument --warmup-steps: {args.warmup_steps} warmup steps in a run of "
                     f"--max-steps {args.max_steps} leave no step at the full rate; pass fewer "
                     "warmup steps or more --max-steps")
    if example == "tiny_gpt" and args.dry_run:  # one step, one validation batch, a short sample
        args.sample_length = min(args.sample_length, 20)
    gamma = getattr(args, "lr_step_gamma", 1)
    epochs = getattr(args, "epochs", 1)
    last_lr_log = math.log(args.lr) + (epochs - 1) * math.log(gamma)  # logs: no overflow
    if last_lr_log > math.log(FLOAT32_MAX):
        parser.error(f"argument --lr-step-gamma: {args.lr_step_gamma} over {args.epochs} epochs "
                     f"takes the lr past {FLOAT32_MAX:.3g}, which float32 cannot hold; pick a "
                     "gamma nearer 1")
    processes = getattr(args, "devices", 1) * getattr(args, "num_nodes", 1)
    step_2_only = getattr(args, "test", False) or getattr(args, "predict", None)
    if processes > 1 and step_2_only:  # as Lightning advises
        parser.error(f"argument --devices: --test and --predict run on one process, so that each "
                     f"image counts once (DDP's sampler repeats a few); train with --devices "
                     f"{args.devices} --checkpoint-dir DIR, then resume from its last.ckpt with "
                     "--devices 1 --epochs one more --test")
    machine_checks.check_devices(parser, args)
    machine_checks.check_paths(parser, args)
    return args


def _not_this_steps(example: str, package: str, unknown: list[str]) -> str:
    """Why `unknown` was refused: a flag of another step says which step, and which command,
    takes it (the same twin, `package`, as the one that was run)."""
    flag = next((token.split("=")[0] for token in unknown if token.startswith("--")), None)
    for other in EXAMPLES:
        takes_it = flag in build_parser(other.name)._option_string_actions
        if flag and other.name != example and takes_it:
            return (f"{flag} belongs to step {other.step}, {other.name}; use it with python -m "
                    f"{package}.{other.name}")
    return f"unrecognized arguments: {' '.join(unknown)}"
