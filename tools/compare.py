"""The main job: run every example three ways (plain, Fabric, Lightning), print how they agree.

    python -m tools.compare [any flag the examples take]

Each twin runs in its own process, exactly as a learner would run it, with
`--metrics-out`; the JSON files are then compared, and each step's three loss curves are
drawn on one chart, `PLOT_DIR/EXAMPLE.png` (`--plot-dir`, default runs/compare). Other flags
go to every example that has them (`--epochs 3` to steps 1-3, `--max-steps 200` to step 4,
`--num-samples 2000` to the sum twins only). Before each twin it prints "twin K of N", the
command, and how long the rest should take, judged from the twins that ran. Exit status 1 if
any twin's numbers differ, 2 for a flag no example knows. Ctrl-C or SIGTERM stops the twin
that is running and ends in one line, with exit status 1. A twin's stderr goes to a temporary
file, of which only the last line is read.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from shared import process_setup, run_end
from shared.flags import build_parser
from shared.one_line_parser import OneLineParser
from shared.registry import EXAMPLE_NAMES, TWINS
from tools.plots import plot_losses

KEYS = ("train_loss", "val_loss", "val_accuracy")  # what must be bit-identical


def run_twin(package: str, example: str, flags: list[str], out: Path) -> dict:
    """Run one file as `python -m package.example flags`; return its metrics JSON.

    While it runs, its epoch lines (and where it writes) are passed on, indented, so the main
    job shows which twin is at which epoch; the progress bar is left out.
    """
    command = [sys.executable, "-m", f"{package}.{example}", *flags, "--no-progress",
               "--metrics-out", str(out)]
    with tempfile.TemporaryFile("w+") as errors, \
            subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True) as process:
        try:
            for line in process.stdout:
                if line.startswith(("epoch ", "early stopping", "this run writes")):
                    print(f"    {line.rstrip()}", flush=True)
            process.wait()
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: stop the twin too, then say so
            process.terminate()
            process.wait()
            raise
        raw = errors.buffer  # in bytes: a text file cannot seek to any offset
        raw.seek(0, os.SEEK_END)
        raw.seek(max(0, raw.tell() - 8192))  # the tail only, however much it printed
        stderr = raw.read().decode(errors="replace")
    if process.returncode != 0:
        tail = (stderr.strip().splitlines() or ["(no output)"])[-1]
        print(f"{' '.join(command[2:])} failed with status {process.returncode}: {tail}",
              file=sys.stderr)
        sys.exit(process.returncode)
    return json.loads(out.read_text())


def flags_for(example: str, flags: list[str]) -> list[str]:
    """The part of `flags` that `example` accepts: each `--flag` with the values after it."""
    known = {opt for action in build_parser(example)._actions for opt in action.option_strings}
    kept, keep = [], False
    for token in flags:
        if token.startswith("--"):
            keep = token.split("=")[0] in known
        if keep:
            kept.append(token)
    return kept


def seconds_left(took: dict[tuple[str, str], float], waiting: list[tuple[str, str]]) -> str:
    """" (about N s left)": each waiting twin as long as its example's twins took so far, or,
    for an example not started yet, as the twins that ran took on average; "" before any ran.
    """
    if not took:
        return ""
    def guess(example: str) -> float:
        same = [seconds for (done, _), seconds in took.items() if done == example]
        return sum(same or took.values()) / len(same or took)
    return f" (about {sum(guess(example) for example, _ in waiting):.0f} s left)"


def compare(plain: dict, *others: dict) -> list[str]:
    """One table row: example, steps, max |Δloss| from plain to the others, each one's val
    accuracy and seconds."""
    runs = (plain, *others)
    steps = [len(run["train_loss"]) for run in runs]
    if len(set(steps)) > 1:
        delta = "step counts differ"
    else:
        differences = (abs(a - b) for other in others
                       for a, b in zip(plain["train_loss"], other["train_loss"]))
        delta = f"{max(differences, default=0.0):.3g}"
    return [
        plain["example"],
        " / ".join(map(str, steps)) if delta == "step counts differ" else str(steps[0]),
        delta,
        " / ".join(f"{run['val_accuracy'][-1]:.4f}" for run in runs),
        " / ".join(f"{run['seconds']:.1f}" for run in runs),
    ]


def main() -> None:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", nargs="+", choices=EXAMPLE_NAMES, default=list(EXAMPLE_NAMES))
    parser.add_argument("--plot-dir", default="runs/compare",
                        help="where each pair's loss-curve PNG goes")
    with run_end.in_one_line(), process_setup.in_place():
        known, flags = parser.parse_known_args()
    everywhere = {opt for example in EXAMPLE_NAMES for opt in flags_for(example, flags)
                  if opt.startswith("--")}
    unknown = [f for f in flags if f.startswith("--") and f not in everywhere]
    if "--dry-run" in flags:  # a dry run writes no --metrics-out: there would be nothing to compare
        print("error: tools.compare runs full examples; drop --dry-run (or run one twin with it)",
              file=sys.stderr)
        sys.exit(2)
    if unknown:
        print(f"error: no example takes {unknown[0]} "
              "(see python -m plain_pytorch.sum_dataset --help)", file=sys.stderr)
        sys.exit(2)
    header = ["example", "steps", "max abs(Δloss)", "val accuracy plain / Fabric / Lightning",
              "seconds plain / Fabric / Lightning"]
    rows, identical, plots = [], True, []
    plot_dir = Path(known.plot_dir)
    try:
        plot_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        print(f"error: cannot write into --plot-dir {plot_dir}: {error.strerror or error}; "
              "pick a writable folder", file=sys.stderr)
        sys.exit(2)
    queue = [(example, twin.folder) for example in known.examples for twin in TWINS]
    took: dict[tuple[str, str], float] = {}  # (example, twin): wall seconds, start-up included
    with tempfile.TemporaryDirectory() as tmp:
        for example in known.examples:
            runs = {}
            for name, package in ((twin.folder, twin.package) for twin in TWINS):
                own_flags = flags_for(example, flags)
                command = " ".join([f"{package}.{example}", *own_flags])
                print(f"twin {len(took) + 1} of {len(queue)}: python -m {command}"
                      f"{seconds_left(took, queue[len(took):])}", flush=True)
                started = time.perf_counter()
                runs[name] = run_twin(package, example, own_flags,
                                      Path(tmp) / f"{example}-{name}.json")
                took[example, name] = time.perf_counter() - started
            rows.append(compare(*runs.values()))
            plots.append(plot_dir / f"{example}.png")
            plot_losses(*runs.values(), path=plots[-1],
                        labels=("plain PyTorch", "Fabric", "Lightning"))
            identical &= all(runs["plain"][k] == run[k] for run in runs.values() for k in KEYS)
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("| " + " | ".join(str(cell).ljust(w) for cell, w in zip(row, widths)) + " |")
    print("twins bit-identical (train_loss, val_loss, val_accuracy):", "yes" if identical else "NO")
    print("loss curves, the three twins on one chart:", ", ".join(str(path) for path in plots))
    sys.exit(0 if identical else 1)


if __name__ == "__main__":
    with run_end.in_one_line():  # Ctrl-C, SIGTERM: one line, status 1, the running twin stopped
        main()
