"""What each side costs: one epoch of each image example, against the compute floor.

    python -m tools.benchmark --data-dir /usr/share/datasets/fashion-mnist    # full size, 5 reps
    python -m tools.benchmark --data-dir DIR --reps 1 --limit-train 2000 --models mlp # a quick look

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

MODELS = {"mlp": "mnist_feedforward", "cnn": "cnn_classifier"}
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
# On request (--measures), where the plain twin's own time over the floor goes: each of its
# extras off.
PLAIN_EXTRAS_OFF = ["plain, no TensorBoard", "plain, no progress bar"]
# On request too: what every twin pays once at start-up so that its bits cannot depend on free
# memory.
RESERVE = "reserving MKL's workspace (once a process)"


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


def measure_here(args: argparse.Namespace) -> float:
    """Run one measurement in this process (the parent starts one process per measurement)."""
    example = MODELS[args.model]
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
    """(seconds, peak memory in MB) of one measurement, in a fresh process."""
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
                   args.dataset, "--data-dir", args.data_dir]
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
        seconds = result.get("seconds", float("nan"))
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
                        default=MEASURES,
                        help="measure only these (floor and plain always come first, the ratios "
                             "need them)")
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
        splits = load_mnist(args.data_dir, args.dataset, download=False)
    if args.measure:
        print(json.dumps({"seconds": measure_here(args),
                          "lightning imported": "lightning" in sys.modules}))
        return
    train, val = first(splits.train, args.limit_train), first(splits.val, args.limit_val)
    sizes = f"{len(train):,} train, {len(val):,} validate"
    print(f"{args.dataset}: {sizes}; {args.reps} interleaved reps; {os.cpu_count()} cores, "
          f"{torch.get_num_threads()} torch threads; torch {torch.__version__}", flush=True)
    measures = ["floor", "plain", *(m for m in args.measures if m not in ("floor", "plain"))]
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    rows = [(model, measure) for model in args.models for measure in measures]
    with ThreadPoolExecutor(args.jobs) as pool:  # each measurement is a process of its own
        for rep in range(args.reps):
            for row, result in zip(rows, pool.map(lambda row: run_measure(args, *row), rows)):
                results.setdefault(row, []).append(result)
            print(f"rep {rep + 1} of {args.reps} done", file=sys.stderr, flush=True)
    print(table(results, args.models, measures))


if __name__ == "__main__":
    main()
