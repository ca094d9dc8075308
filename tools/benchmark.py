"""What each side costs: one epoch of each image example, and step 4's tokens per second,
against the compute floor.

    python -m tools.benchmark --data-dir /usr/share/datasets/fashion-mnist    # full size, 5 reps
    python -m tools.benchmark --data-dir DIR --reps 1 --limit-train 2000 --models mlp # a quick look
    python -m tools.benchmark --models gpt                                    # step 4 alone

For the MLP (step 1, mnist_feedforward) and the CNN (step 2, cnn_classifier), one epoch on
the training split (Fashion-MNIST by default: 55,000 train, 5,000 validate), measured as:
  (a) floor: the same model, seed and optimizer, forward + backward + step over batches
      sliced from the tensors beforehand, plus the same validation pass; nothing else;
  (b) plain: the plain twin as its lesson runs it (progress bar, TensorBoard every step);
      its own clock, `RunRecord.seconds`: from the record's start to its finish (the run
      folders, the TensorBoard writer, the training and validation loop);
  (c) fabric: the Fabric twin as its lesson runs it, the same loop as (b) with Fabric's
      wrappers (the model, optimizer and loaders set up, `fabric.backward`, `fabric.log_dict`);
      its own clock, the same span; and lightning: the Lightning twin as its lesson runs it;
      its clock spans building the Trainer and `trainer.fit`, so it includes the sanity check
      (the twins already leave out the model summary, so row (d)'s "summary off" changes
      nothing);
  (d) lightning with each per-step extra switched off in turn (TensorBoard every step ->
      every 50th, the progress bar, the sanity check, the model summary; checkpointing is
      already off unless `--checkpoint-dir`), all four off, and `Trainer(barebones=True)`
      (which also forbids `self.log`, so that run logs and records nothing);
  (e) torchvision's per-sample pipeline (uint8 -> PIL image -> ToTensor -> Normalize) over
      the same images for one epoch, data only, for reference;
  (f) each twin's process start-up: the wall time of `--dry-run` (imports, reading the data,
      one batch each way);
  and on request (`--measures "plain, no TensorBoard" "plain, no progress bar"`), the plain
  twin with each of its own extras off, to see where its time over the floor goes; and
  (`--measures "reserving MKL's workspace (once a process)"`) what shared/blas.py costs.
For the small GPT (step 4, tiny_gpt), tokens per second of training, each side on the
twins' default model, batch and context, seed 42, `--gpt-steps` steps (default 120), one
evaluation of one batch after the last step, outside the clock (`--eval-interval` = the run's
steps), no sampled text (`--sample-length 0`), no checkpoints, no progress bar
(`--no-progress`: the plain and Fabric twins of step 4 draw none, so the Trainer's is off
too), all on the CPU:
  (a) floor: the same model, seed, AdamW groups, warmup-cosine rate set before each step and
      batches (the same `RandomWindows`), forward + backward + step and reading the loss;
      nothing else;
  (b) plain, (c) fabric and lightning: each twin as its lesson runs it with the flags above
      (TensorBoard at every step, the record, the divergence check, the Trainer's hooks).
The four clocks are one clock: the moment the training iterable hands out batch
`GPT_UNTIMED + 1` to the moment it hands out the last batch. That spans every step between
whole (the forward, backward and step, and all a side does around them), leaves out the first
`GPT_UNTIMED` steps (the first calls' one-off costs) and everything before and after the loop
(imports, the corpus, building the Trainer, sampling), and is the same span on every side.
Tokens per second = timed steps × batch size × context / that span; the ratios are of the
time per token, as for the image rows (above 1: slower).
Every measurement runs in a fresh process, the reps interleaved (a, b, c, d..., then again),
so that a slow moment of the machine spreads over all of them; the table gives medians,
the fastest and slowest rep (a difference between two rows smaller than that spread is
noise), each median as a ratio to (a) and to (b), and each process's peak memory. A script,
not a test: tests/test_benchmark.py only runs it at a tiny size, to show that it works.
"""

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from unittest import mock

import torch
import torch.nn.functional as F

from shared import process_setup, run_end
from shared.data import IMAGE_DATASETS, first, load_mnist
from shared.one_line_parser import OneLineParser
from shared.registry import TWINS
from shared.run_end import BadInput

MODELS = {"mlp": "mnist_feedforward", "cnn": "cnn_classifier", "gpt": "tiny_gpt"}
IMAGE_MODELS = ["mlp", "cnn"]  # measured by the epoch; "gpt" in tokens per second
LIGHTNING_EXTRAS_OFF = {  # measure name: the Trainer arguments that switch the extra off
    "lightning, TensorBoard every 50th step": dict(log_every_n_steps=50),
    "lightning, no progress bar": dict(enable_progress_bar=False),
    "lightning, no sanity check": dict(num_sanity_val_steps=0),
    "lightning, no model summary": dict(enable_model_summary=False),
    "lightning, all four off": dict(log_every_n_steps=50, enable_progress_bar=False,
                                    num_sanity_val_steps=0,
                                    enable_model_summary=False),
    "lightning, barebones=True": dict(barebones=True, logger=False, enable_progress_bar=False,
                                      log_every_n_steps=None,
                                      enable_model_summary=False, num_sanity_val_steps=0,
                                      enable_checkpointing=False,
                                      fast_dev_run=False, callbacks=[]),
}
MEASURES = ["floor", "plain", "fabric", "lightning", *LIGHTNING_EXTRAS_OFF,
            "torchvision PIL transforms (data only)",
            "start-up: plain --dry-run", "start-up: fabric --dry-run",
            "start-up: lightning --dry-run"]
STARTING = {f"start-up: {twin.folder} --dry-run": twin.package for twin in TWINS}
PACKAGE_OF = {twin.folder: twin.package for twin in TWINS}  # "plain": "plain_pytorch", ...
# On request (--measures), where the plain twin's own time over the floor goes: each of its
# extras off.
PLAIN_EXTRAS_OFF = ["plain, no TensorBoard", "plain, no progress bar"]
# On request too: what every twin pays once at start-up so that its bits cannot depend on free
# memory.
RESERVE = "reserving MKL's workspace (once a process)"
# Step 4's rows: the floor and the three twins, in tokens per second.
GPT_MEASURES = ["floor", "plain", "fabric", "lightning"]
GPT_UNTIMED = 5  # the first steps, left off the clock: the first calls' one-off costs
DRAWN: list[float] = []  # when the training iterable handed out each batch (step 4's clock)
UNIT = {"mlp": "seconds", "cnn": "seconds", "gpt": "tokens per second"}  # what a row measures


def twin_flags(args: argparse.Namespace, out: str) -> list[str]:
    flags = ["--dataset", args.dataset, "--data-dir", args.data_dir, "--epochs", "1",
             "--accelerator", "cpu",
             "--log-dir", out]
    flags += ["--no-progress"] if getattr(args, "measure", None) == "plain, no progress bar" else []
    for flag, value in (("--limit-train", args.limit_train), ("--limit-val", args.limit_val)):
        if value:
            flags += [flag, str(value)]
    return flags


def floor_seconds(args: argparse.Namespace, example: str) -> float:
    """(a): the twins' model, seed, optimizer and batch size on batches cut beforehand, and the
    validation pass."""
    from shared.flags import DEFAULTS
    from shared.models import ConvNet, FeedForward

    defaults = DEFAULTS[example]
    splits = load_mnist(args.data_dir, args.dataset, download=False)
    (x, y), (val_x, val_y) = (first(s, n).tensors for s, n in ((splits.train, args.limit_train),
                                                               (splits.val, args.limit_val)))
    torch.manual_seed(42)
    model = FeedForward(defaults["hidden_size"]) if example == "mnist_feedforward" else ConvNet()
    if example == "mnist_feedforward":
        optimizer = torch.optim.Adam(model.parameters(), lr=defaults["lr"])
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=defaults["lr"],
                                    momentum=defaults["momentum"])
    batch = defaults["batch_size"]
    order = torch.randperm(len(x))
    batches = [(x[i], y[i]) for i in order.split(batch)]
    val_batches = list(zip(val_x.split(batch), val_y.split(batch)))
    start = time.perf_counter()
    model.train()
    for images, labels in batches:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        loss.item()  # the twins read every loss too
    model.eval()
    with torch.no_grad():
        loss_sum = accuracy_sum = torch.tensor(0.0)
        for images, labels in val_batches:
            logits = model(images)
            loss_sum = loss_sum + F.cross_entropy(logits, labels) * len(labels)
            correct = (logits.argmax(dim=1) == labels).float().mean()
            accuracy_sum = accuracy_sum + correct * len(labels)
        (loss_sum / len(val_x)).item()
    return time.perf_counter() - start


def twin_seconds(args: argparse.Namespace, example: str, package: str,
                 trainer_args: dict | None = None) -> float:
    """(b), (c), (d): a twin's own clock, as its lesson runs it (with Trainer arguments
    overridden for (d))."""
    import importlib

    twin = importlib.import_module(f"{package}.{example}")
    patches = contextlib.ExitStack()
    if trainer_args is not None:
        # Imported only here: importing lightning sets PYTORCH_NVML_BASED_CUDA_CHECK=1, which makes
        # every torch.cuda.is_available() (Adam asks at each step) try NVML; the plain twin must not
        # pay it.
        import lightning as L

        real_trainer = L.Trainer
        patches.enter_context(mock.patch("lightning.Trainer",
                                         lambda **kwargs: real_trainer(**(kwargs | trainer_args))))
        if trainer_args.get("barebones"):  # barebones forbids self.log: this run logs nothing
            patches.enter_context(mock.patch.object(L.LightningModule, "log", lambda *a, **k: None))
            # so step 2's end-of-validation nan check has no val_loss to read
            for module in vars(twin).values():
                if isinstance(module, type) and "on_validation_epoch_end" in vars(module):
                    patches.enter_context(mock.patch.object(module, "on_validation_epoch_end",
                                                            lambda self: None))
    if package == "plain_pytorch" and args.measure == "plain, no TensorBoard":
        # writer = None
        patches.enter_context(mock.patch.object(twin, "SummaryWriter", lambda *a, **k: None))
    with tempfile.TemporaryDirectory() as out, patches:
        # the bars and summaries still draw, into a buffer
        with contextlib.redirect_stdout(io.StringIO()):
            record = twin.main(twin_flags(args, out))
    return record.seconds


def transform_seconds(args: argparse.Namespace) -> float:
    """(e): torchvision's per-sample pipeline over the training images, one epoch, data only."""
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms

    mean, std = IMAGE_DATASETS[args.dataset][2]
    images, labels = first(load_mnist(args.data_dir, args.dataset, download=False).train,
                           args.limit_train).tensors
    # back to the files' (N, 28, 28) uint8
    raw = (images[:, 0] * std + mean).mul(255).round().to(torch.uint8)

    # what torchvision's MNIST(..., transform=...) does for each image
    class PerSampleTransform(Dataset):
        transform = transforms.Compose([transforms.ToTensor(),
                                        transforms.Normalize((mean,), (std,))])

        def __len__(self) -> int:
            return len(raw)

        def __getitem__(self, i: int):
            return self.transform(Image.fromarray(raw[i].numpy())), int(labels[i])

    start = time.perf_counter()
    for _ in DataLoader(PerSampleTransform(), batch_size=100, shuffle=True):
        pass
    return time.perf_counter() - start


def reserve_seconds() -> float:
    """shared/blas.py's one product, in a process that has not run it yet (process_setup.in_place
    runs it first)."""
    from shared.blas import reserve_blas_workspace

    start = time.perf_counter()
    reserve_blas_workspace()
    return time.perf_counter() - start


def gpt_flags(args: argparse.Namespace, out: str) -> list[str]:
    """Step 4's flags, the same for every side: the defaults but for the run's length, one
    evaluation at the very end, no sample, no bar."""
    from shared.flags import DEFAULTS

    warmup = min(DEFAULTS["tiny_gpt"]["warmup_steps"], args.gpt_steps - 1)
    return ["--max-steps", str(args.gpt_steps), "--warmup-steps", str(warmup),
            "--eval-interval", str(args.gpt_steps), "--eval-batches", "1",  # after the clock
            "--sample-length", "0", "--no-progress", "--accelerator", "cpu", "--log-dir", out]


@contextlib.contextmanager
def batch_draws_timed():
    """While it lasts, the training iterable (shared/text.py's RandomWindows, which every side
    trains from) notes in DRAWN the moment it hands out each batch."""
    from shared.text import RandomWindows

    hand_out = RandomWindows.__iter__

    def timed(self):
        for batch in hand_out(self):
            DRAWN.append(time.perf_counter())
            yield batch

    with mock.patch.object(RandomWindows, "__iter__", timed):
        yield


def gpt_floor(args: argparse.Namespace) -> None:
    """Step 4's (a): the twins' model, seed, AdamW groups, rate schedule and batches; forward,
    backward, step and the loss read, nothing else."""
    from shared.flags import DEFAULTS
    from shared.models import TinyGPT
    from shared.optimisation import parameter_groups, warmup_cosine
    from shared.text import RandomWindows, load_corpus

    defaults, steps = DEFAULTS["tiny_gpt"], args.gpt_steps
    warmup = min(defaults["warmup_steps"], steps - 1)
    corpus = load_corpus(None, None, defaults["context"])
    torch.manual_seed(42)
    model = TinyGPT(len(corpus.vocabulary), defaults["context"])
    optimizer = torch.optim.AdamW(parameter_groups(model, defaults["weight_decay"]),
                                  lr=defaults["lr"], betas=(0.9, 0.95))
    train_stream = RandomWindows(corpus.train, defaults["context"], defaults["batch_size"], steps,
                                 seed=42)
    model.train()
    for step, (x, y) in enumerate(train_stream):
        for group in optimizer.param_groups:
            group["lr"] = defaults["lr"] * warmup_cosine(step, warmup, steps)
        logits = model(x)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        loss.item()  # the twins read every loss too


def gpt_tokens_per_second(args: argparse.Namespace, package: str | None) -> float:
    """Step 4: train with the floor (`package` None) or a twin; tokens per second between
    handing out batch GPT_UNTIMED + 1 and the last batch."""
    import importlib

    from shared.flags import DEFAULTS

    with batch_draws_timed():
        if package is None:
            gpt_floor(args)
        else:
            twin = importlib.import_module(f"{package}.tiny_gpt")
            with tempfile.TemporaryDirectory() as out, contextlib.redirect_stdout(io.StringIO()):
                twin.main(gpt_flags(args, out))
    if len(DRAWN) != args.gpt_steps:  # one hand-out per step, none ahead, none again
        raise RuntimeError(f"{len(DRAWN)} batches handed out in {args.gpt_steps} steps")
    timed_steps = args.gpt_steps - 1 - GPT_UNTIMED
    tokens = timed_steps * DEFAULTS["tiny_gpt"]["batch_size"] * DEFAULTS["tiny_gpt"]["context"]
    return tokens / (DRAWN[-1] - DRAWN[GPT_UNTIMED])


def measure_here(args: argparse.Namespace) -> float:
    """Run one measurement in this process (the parent starts one process per measurement):
    its seconds, or for step 4 its tokens per second."""
    example = MODELS[args.model]
    if example == "tiny_gpt":
        return gpt_tokens_per_second(args, None if args.measure == "floor" else
                                     PACKAGE_OF[args.measure])
    if args.measure == "floor":
        return floor_seconds(args, example)
    if args.measure == "plain" or args.measure in PLAIN_EXTRAS_OFF:
        return twin_seconds(args, example, "plain_pytorch")
    if args.measure == "fabric":
        return twin_seconds(args, example, "fabric_version")
    if args.measure == "lightning":
        return twin_seconds(args, example, "lightning_version")
    if args.measure in LIGHTNING_EXTRAS_OFF:
        return twin_seconds(args, example, "lightning_version", LIGHTNING_EXTRAS_OFF[args.measure])
    if args.measure == RESERVE:
        return reserve_seconds()
    return transform_seconds(args)


def run_measure(args: argparse.Namespace, model: str, measure: str) -> tuple[float, float]:
    """(seconds, or tokens per second for "gpt"; peak memory in MB) of one measurement, in a
    fresh process."""
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    if measure.startswith("start-up"):
        package = STARTING[measure]
        with tempfile.TemporaryDirectory() as out:
            command = [sys.executable, "-m", f"{package}.{MODELS[model]}", *twin_flags(args, out),
                       "--dry-run",
                       "--no-progress"]
            start = time.perf_counter()
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, env=env)
            _, status, usage = os.wait4(process.pid, 0)
            seconds = time.perf_counter() - start
    else:
        command = [sys.executable, "-m", "tools.benchmark", "--measure", measure, "--model", model,
                   "--dataset",
                   args.dataset, "--data-dir", args.data_dir, f"--gpt-steps={args.gpt_steps}"]
        if measure == RESERVE:  # not under process_setup.in_place(), which would reserve it first
            command = [sys.executable, "-c",
                       "import json, sys; from tools.benchmark import reserve_seconds; "
                                             "print(json.dumps({'seconds': reserve_seconds()}))"]
        command += [f"--limit-train={args.limit_train}"] if args.limit_train else []
        command += [f"--limit-val={args.limit_val}"] if args.limit_val else []
        with tempfile.TemporaryFile("w+") as result:
            process = subprocess.Popen(command, stdout=result, stderr=subprocess.DEVNULL, env=env)
            _, status, usage = os.wait4(process.pid, 0)
            result.seek(0)
            text = result.read()
        result = json.loads(text.strip().splitlines()[-1]) if status == 0 else {}
        seconds = result.get(UNIT[model], float("nan"))
        if result.get("lightning imported") and not measure.startswith(("lightning", "fabric")):
            print(f"error: measuring {measure} ({model}) imported lightning; it must not",
                  file=sys.stderr)
            sys.exit(1)
    if status != 0:
        print(f"error: {measure} ({model}) failed with status {status}; run it alone to see why",
              file=sys.stderr)
        sys.exit(1)
    return seconds, usage.ru_maxrss / 1024  # Linux reports kilobytes


def table(results: dict[tuple[str, str], list[tuple[float, float]]], models: list[str],
          measures: list[str]) -> str:
    """The image models' rows: seconds, and each median's ratio to the floor's and the plain
    twin's."""
    rows = ["| model | measure | median s | min–max s | × floor | × plain | peak MB |",
            "|---|---|---|---|---|---|---|"]
    for model in models:
        median = {m: statistics.median(s for s, _ in results[model, m]) for m in measures}
        for measure in measures:
            seconds = [s for s, _ in results[model, measure]]
            peak = max(mb for _, mb in results[model, measure])
            ratios = (f"{median[measure] / median['floor']:.2f} | "
                      f"{median[measure] / median['plain']:.2f}")
            rows.append(f"| {model} | {measure} | {median[measure]:.2f} | "
                        f"{min(seconds):.2f}–{max(seconds):.2f} | "
                        f"{ratios} | {peak:.0f} |")
    return "\n".join(rows)


def gpt_table(results: dict[tuple[str, str], list[tuple[float, float]]],
              measures: list[str]) -> str:
    """Step 4's rows: tokens per second, and the time per token as a ratio to the floor's and
    the plain twin's (above 1: slower), as the image rows give theirs."""
    rows = ["| model | measure | median tokens/s | min–max tokens/s | time × floor | "
            "time × plain | peak MB |", "|---|---|---|---|---|---|---|"]
    median = {m: statistics.median(t for t, _ in results["gpt", m]) for m in measures}
    for measure in measures:
        rates = [t for t, _ in results["gpt", measure]]
        peak = max(mb for _, mb in results["gpt", measure])
        rows.append(f"| gpt | {measure} | {median[measure]:,.0f} | "
                    f"{min(rates):,.0f}–{max(rates):,.0f} | "
                    f"{median['floor'] / median[measure]:.2f} | "
                    f"{median['plain'] / median[measure]:.2f} | {peak:.0f} |")
    return "\n".join(rows)


def main() -> None:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--dataset", choices=list(IMAGE_DATASETS), default="fashion-mnist")
    parser.add_argument("--reps", type=int, default=5,
                        help="interleaved repetitions of every measurement")
    parser.add_argument("--limit-train", type=int,
                        help="use the first N training images (a quick run)")
    parser.add_argument("--limit-val", type=int, help="use the first N validation images")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--measures", nargs="+", choices=MEASURES + PLAIN_EXTRAS_OFF + [RESERVE],
                        help="measure only these (floor and plain always come first, the ratios "
                             f"need them; gpt has {', '.join(GPT_MEASURES)} only) (default: all "
                             "but those on request)")
    parser.add_argument("--gpt-steps", type=int, default=120,
                        help=f"gpt: training steps per measurement, the first {GPT_UNTIMED} and "
                             "the last untimed (default: 120)")
    parser.add_argument("--measure", choices=MEASURES + PLAIN_EXTRAS_OFF + [RESERVE],
                        help=argparse.SUPPRESS)  # one measurement, in this process
    parser.add_argument("--model", choices=list(MODELS), help=argparse.SUPPRESS)
    parser.add_argument("--jobs", type=int, default=1,
                        help="measurements run at once; above 1 they share the CPU, so the times "
                             "only show that every row runs (what tests/test_benchmark.py checks), "
                             "not what it costs")
    # a bad flag or missing data: one line on stderr, exit status 2
    with run_end.in_one_line(), process_setup.in_place():
        args = parser.parse_args()
        if min(args.reps, args.jobs, args.limit_train or 1) < 1:
            raise BadInput("--reps, --jobs and --limit-train must be at least 1")
        if args.gpt_steps < GPT_UNTIMED + 2:
            raise BadInput(f"--gpt-steps {args.gpt_steps}: the first {GPT_UNTIMED} and the last "
                           f"are untimed; pass at least {GPT_UNTIMED + 2}")
        images = [args.model] if args.measure else [m for m in args.models if m in IMAGE_MODELS]
        asked = [m for m in args.measures or [] if m not in GPT_MEASURES]
        if asked and not images:
            raise BadInput(f"--measures {asked[0]!r}: measured for mlp and cnn only; for gpt "
                           f"pick from {', '.join(GPT_MEASURES)}")
        if any(model in IMAGE_MODELS for model in images):
            splits = load_mnist(args.data_dir, args.dataset, download=False)
    if args.measure:
        print(json.dumps({UNIT[args.model]: measure_here(args),
                          "lightning imported": "lightning" in sys.modules}))
        return
    print(f"{args.reps} interleaved reps; {os.cpu_count()} cores, {torch.get_num_threads()} torch "
          f"threads; torch {torch.__version__}", flush=True)
    if images:
        train, val = first(splits.train, args.limit_train), first(splits.val, args.limit_val)
        print(f"{', '.join(images)}: {args.dataset}, {len(train):,} train, {len(val):,} "
              "validate", flush=True)
    if "gpt" in args.models:
        from shared.flags import DEFAULTS

        size = DEFAULTS["tiny_gpt"]
        print(f"gpt: {args.gpt_steps} steps of {size['batch_size']} windows of "
              f"{size['context']} characters, steps {GPT_UNTIMED + 1} to {args.gpt_steps - 1} "
              "timed", flush=True)
    measures = ["floor", "plain", *(m for m in args.measures or MEASURES
                                    if m not in ("floor", "plain"))]
    gpt_measures = [m for m in measures if m in GPT_MEASURES]
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    rows = [(model, measure) for model in images for measure in measures]
    rows += [("gpt", measure) for measure in gpt_measures if "gpt" in args.models]
    with ThreadPoolExecutor(args.jobs) as pool:  # each measurement is a process of its own
        for rep in range(args.reps):
            for row, result in zip(rows, pool.map(lambda row: run_measure(args, *row), rows)):
                results.setdefault(row, []).append(result)
            print(f"rep {rep + 1} of {args.reps} done", file=sys.stderr, flush=True)
    if images:
        print(table(results, images, measures))
    if "gpt" in args.models:
        print(gpt_table(results, gpt_measures))


if __name__ == "__main__":
    main()
