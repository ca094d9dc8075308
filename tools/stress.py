"""The promise under stress: every twin run again and again on a busy machine, compared bit for bit.

    python -m tools.stress                                  # 20 runs of each twin of each step
    python -m tools.stress --runs 3 --examples sum_dataset  # a quick look

It keeps the machine busy itself (`--load` processes spinning on the CPU, each stopping by
itself after `--load-seconds` at most), then runs each twin of each step `--runs` times,
each in a fresh process, in a fresh working folder at a depth of its own, with an argument
of its own length and an environment variable of its own size, the twins interleaved. Every
run's per-step `train_loss`, `val_loss` and `val_accuracy` (from `--metrics-out`) must equal
the first run's of that step, plain, Fabric or Lightning, to the last bit. It prints a line per
step and exits 1 if any run differs, naming it.

A script, not a test: tests/test_stress.py runs a short form of it. Ctrl-C or SIGTERM stops
it in one line, with every process it started stopped too. A run's stderr goes to a file in
its folder, of which only the last line is read.
"""

import argparse
import json
import math
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from shared import process_setup, run_end
from shared.one_line_parser import OneLineParser
from shared.registry import EXAMPLE_NAMES, TWINS

MAX_RUNS = 1000
MAX_LOAD = 4 * (os.cpu_count() or 1)  # beyond that, more processes only slow the machine down
MAX_LOAD_SECONDS = 24 * 3600

# Small but real runs: every feature the step teaches that changes the numbers is on.
FLAGS = {
    "mnist_feedforward": ["--limit-train", "1000", "--limit-val", "300", "--epochs", "2"],
    "cnn_classifier": ["--limit-train", "400", "--limit-val", "150", "--epochs", "2",
                       "--batch-size", "50"],
    "sum_dataset": ["--num-samples", "650", "--epochs", "3", "--gradient-clip-val", "0.05"],
    "tiny_gpt": ["--max-steps", "12", "--warmup-steps", "3", "--eval-interval", "4",
                 "--eval-batches", "2", "--batch-size", "8", "--context", "32",
                 "--sample-length", "40"],
}
PACKAGES = {twin.folder: twin.package for twin in TWINS}  # "plain": "plain_pytorch", ...


_NUMBER = {int: "a whole number", float: "a number"}  # for the refusal line


def spin(seconds: float) -> None:
    """Keep one core busy, with some memory traffic, for `seconds` at most."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # stopped by terminate(), quietly
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    end, numbers = time.monotonic() + seconds, list(range(100_000))
    while time.monotonic() < end:
        random.shuffle(numbers)


def run(example: str, twin: str, index: int, root: Path) -> dict:
    """One run in a folder of its own, with an argument and an environment of their own sizes."""
    rng = random.Random(f"{example}-{twin}-{index}")
    folder = root.joinpath(*(f"d{depth}" * rng.randint(1, 8) for depth in range(rng.randint(0, 6))),
                           f"{example}-{twin}-{index}")
    folder.mkdir(parents=True)
    log_dir = "logs-" + "x" * rng.randint(0, 150)  # an argument of varying length
    # an environment of varying size
    env = dict(os.environ, STRESS_PADDING="p" * rng.randint(0, 20_000))
    command = [sys.executable, "-m", f"{PACKAGES[twin]}.{example}", *FLAGS[example],
               "--accelerator", "cpu", "--no-progress", "--log-dir", log_dir,
               "--metrics-out", "m.json"]
    with open(folder / "stderr.txt", "w+") as errors:  # on disk, not in memory, however long
        done = subprocess.run(command, cwd=folder, env=env, stdout=subprocess.DEVNULL,
                              stderr=errors)
        if done.returncode != 0:
            tail = (last_lines(errors) or ["(nothing on stderr)"])[-1]
            print(f"error: {command[2]} in {folder} failed with status {done.returncode}: "
                  f"{tail}", file=sys.stderr)
            sys.exit(1)
    record = json.loads((folder / "m.json").read_text())
    return {key: record[key] for key in ("train_loss", "val_loss", "val_accuracy")}


def last_lines(file, size: int = 8192) -> list[str]:
    """The lines in the last `size` bytes of the open file `file`: a tail, whatever its length."""
    raw = file.buffer  # in bytes: a text file cannot seek to any offset
    raw.seek(0, os.SEEK_END)
    raw.seek(max(0, raw.tell() - size))
    return raw.read().decode(errors="replace").strip().splitlines()


def bounded(kind: type, low: float, high: float):
    """An argparse type: a finite `kind` from `low` to `high`; anything else is refused."""
    def check(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {_NUMBER[kind]}") from None
        if not (math.isfinite(value) and low <= value <= high):  # also refuses nan and inf
            raise argparse.ArgumentTypeError(f"{text} must be a number from {low} to {high:g}")
        return value
    return check


def differing(results: list[tuple[str, int, dict]]) -> list[tuple[str, int]]:
    """The (twin, run) of every result that is not the first one's, to the last bit."""
    return [(twin, index) for twin, index, result in results if result != results[0][2]]


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=bounded(int, 1, MAX_RUNS), default=20,
                        help="runs of each twin of each step")
    parser.add_argument("--examples", nargs="+", choices=EXAMPLE_NAMES, default=list(EXAMPLE_NAMES))
    parser.add_argument("--load", type=bounded(int, 0, MAX_LOAD),
                        default=min(os.cpu_count() or 2, MAX_LOAD),
                        help="processes keeping the CPU busy")
    parser.add_argument("--load-seconds", type=bounded(float, 0, MAX_LOAD_SECONDS), default=3600,
                        help="the longest the load runs")
    args = parser.parse_args(argv)
    load = [multiprocessing.Process(target=spin, args=(args.load_seconds,), daemon=True)
            for _ in range(args.load)]
    start, odd_runs = time.monotonic(), []
    try:  # from the first process started: Ctrl-C or SIGTERM stops every one of them
        for process in load:
            process.start()
        print(f"{args.load} processes keep the CPU busy; {args.runs} runs of each twin of each "
              "step", flush=True)
        with tempfile.TemporaryDirectory() as root:
            for example in args.examples:
                results = []
                for index in range(args.runs):
                    for twin in PACKAGES:
                        results.append((twin, index, run(example, twin, index, Path(root))))
                first, odd = results[0][2], differing(results)
                odd_runs += [(example, twin, index) for twin, index in odd]
                steps = len(first["train_loss"])
                verdict = "all identical, bit for bit" if not odd else f"{len(odd)} differ: {odd}"
                print(f"{example}: {len(results)} runs, {steps} steps each: {verdict}", flush=True)
    finally:
        for process in load:
            if process.pid is not None:  # started
                process.terminate()
        for process in load:
            if process.pid is not None:
                process.join()
    print(f"{time.monotonic() - start:.0f} s; " + ("every run identical" if not odd_runs else
                                                  f"{len(odd_runs)} runs differ: {odd_runs}"))
    return 1 if odd_runs else 0


if __name__ == "__main__":
    with run_end.in_one_line(), process_setup.in_place():
        status = main(sys.argv[1:])
    sys.exit(status)
