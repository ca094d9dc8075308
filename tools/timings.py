"""Measure every time README and the lessons state, on this machine, and say what machine it is.

    python -m tools.timings                      # the main job, the quick commands, the lessons
    python -m tools.timings --full               # also `pytest --full` (many minutes)
    python -m tools.timings --only main-job      # one measure (see --list for their names)
    python -m tools.timings --list               # each figure and where it is stated, nothing run

Each time a page states ("about 2 minutes on 2 CPU cores", "under a minute to run",
the main job's table) is listed in `STATED` below: what the figure is, the file that states
it, the words it is stated in, and the measure that gives it. The measures run here, one
after another, each printed with the load average just before it; the header gives the
machine (cores, CPU model, load average, versions), so that a figure can be re-measured
anywhere and read with its machine. The figures of docs/costs.md, docs/which-one.md and
docs/parity.md come from their own tools (`tools.benchmark`, `tools.stress`,
`tools.blas_repro`, which print their machine too); `--list` names them, `--benchmarks`
runs them (an hour or more). tests/test_readme.py checks that every time the pages state is
in `STATED`. A measure that fails prints its last error line and the rest go on; exit
status 1 if any failed.
"""

import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from shared import process_setup, run_end
from shared.one_line_parser import OneLineParser

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Stated:
    """A time a page states: the file, words of it around the time, what it is, and its measure."""

    path: str  # relative to the repository root
    words: str  # as the page writes them, line breaks as spaces
    figure: str
    measure: str  # a name in MEASURES, or "command: ..." for a tool of its own


LESSONS = sorted(path.stem for path in (REPO / "notebooks").glob("*.ipynb"))
UNDER_A_MINUTE = "under a minute to run"
STATED = [
    Stated("README.md", "seconds plain / Fabric / Lightning",
           "the main job's table: each twin's training seconds", "main-job"),
    Stated("README.md", "about 11 minutes on 2 CPU cores",
           "the full suite's wall time, README's test command", "full-tier"),
    Stated("README.md", "about a minute on 2 CPU cores",
           "the quick tier's wall time, plain pytest", "quick-tier"),
    Stated("README.md", "in about 2 minutes on 2 CPU cores",
           "the lesson pages' build, every lesson run", "lesson-pages"),
    *(Stated(f"notebooks/{lesson}.ipynb", UNDER_A_MINUTE, f"lesson {lesson}'s run time", lesson)
      for lesson in ["02_the_training_loop", "03_a_real_training_job", "04_lightnings_extras",
                     "05_the_middle_way", "06_why_the_curves_match",
                     "07_migrating_your_own_loop", "09_a_small_gpt"]),
    Stated("docs/parity.md", "in 1,367 s", "tools.stress's long form, 120 runs",
           "command: python -m tools.stress"),
    Stated("docs/parity.md", "about 0.2 s once per process",
           "reserving the BLAS workspace", "command: python -m tools.blas_repro"),
    Stated("docs/scaling-out.md", "", "every time in the file: the table of 1, 2 and 4 processes; "
           "the rest are the launchers' own timeouts and the tests' bounds", "scaling-out"),
    Stated("docs/costs.md", "", "every time in the file: one epoch of each twin, and its parts",
           "command: python -m tools.benchmark --reps 3"),
    Stated("docs/which-one.md", "", "every time in the file (costs.md's table, in short)",
           "command: python -m tools.benchmark --reps 3"),
]


def machine() -> str:
    """Cores, CPU model, load average now, and the versions that set the figures."""
    import lightning
    import torch

    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), flags=re.MULTILINE)
        model = names[0] if names else model
    return (f"machine: {os.cpu_count()} cores, {model}, load average {load()} (1, 5, 15 min); "
            f"{platform.system()}, Python {platform.python_version()}, torch {torch.__version__}, "
            f"Lightning {lightning.__version__}, torch threads {torch.get_num_threads()}")


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def timed(command: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    """Run `command` (this Python first); its wall seconds and result."""
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    return time.perf_counter() - started, done


def main_job(out: Path) -> str:
    seconds, done = timed([sys.executable, "-m", "tools.compare", "--plot-dir", str(out)], out)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1])
    rows = [line.split("|") for line in done.stdout.splitlines() if line.startswith("| ")]
    twins = [f"{row[1].strip()} {row[5].strip()}" for row in rows[2:]]
    return f"{'; '.join(twins)} (the whole job: {seconds:.0f} s)"


def command_seconds(command: list[str], cwd: Path) -> str:
    seconds, done = timed(command, cwd)
    if done.returncode != 0:
        raise RuntimeError((done.stderr.strip() or done.stdout.strip()).splitlines()[-1])
    return f"{seconds:.0f} s"


def processes_seconds(out: Path) -> str:
    """docs/scaling-out.md's table: one epoch of 4,096 images, the plain twin on 1, 2, 4
    processes."""
    figures = []
    for n in (1, 2, 4):
        _, done = timed([sys.executable, "-m", "torch.distributed.run", "--standalone",
                         "--nproc-per-node", str(n), "-m", "plain_pytorch.cnn_classifier",
                         "--devices", str(n), "--limit-train", "4096", "--limit-val", "64",
                         "--epochs", "1", "--no-progress", "--accelerator", "cpu"], out)
        if done.returncode != 0:
            raise RuntimeError((done.stderr.strip() or done.stdout.strip()).splitlines()[-1])
        summary = [line for line in done.stdout.splitlines() if line.startswith("plain: ")][-1]
        figures.append(f"{n}: {summary.removeprefix('plain: ')}")
    return "; ".join(figures)


def lesson_seconds(lesson: str) -> str:
    from tools.lesson_pages import execute

    started = time.perf_counter()
    execute(REPO / "notebooks" / f"{lesson}.ipynb")
    return f"{time.perf_counter() - started:.0f} s"


MEASURES = {  # name: (what is timed, how, given a scratch folder)
    "main-job": ("python -m tools.compare, each twin's seconds plain / Fabric / Lightning",
                 main_job),
    "quick-tier": ("python -m pytest -q (the quick tier)",
                   lambda out: command_seconds([sys.executable, "-m", "pytest", "-q"], REPO)),
    "full-tier": ("python -m pytest -q --full (asked for by --full)",
                  lambda out: command_seconds([sys.executable, "-m", "pytest", "-q", "--full"],
                                              REPO)),
    "scaling-out": ("one epoch of 4,096 images on 1, 2 and 4 processes (torchrun), the plain twin",
                    processes_seconds),
    "lesson-pages": ("python -m tools.reader --out DIR --lessons",
                     lambda out: command_seconds([sys.executable, "-m", "tools.reader", "--out",
                                                  str(out / "site"), "--lessons"], out)),
    **{lesson: (f"lesson {lesson}, run top to bottom",
                lambda out, name=lesson: lesson_seconds(name)) for lesson in LESSONS},
}


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(MEASURES), metavar="NAME",
                        help="run just these measures: " + ", ".join(MEASURES))
    parser.add_argument("--full", action="store_true", help="also time `pytest --full` (minutes)")
    parser.add_argument("--benchmarks", action="store_true",
                        help="also run the tools that measure docs/' figures (an hour or more)")
    parser.add_argument("--list", action="store_true", help="list each stated figure; run nothing")
    args = parser.parse_args(argv)
    if args.list:
        for stated in STATED:
            where = f"{stated.path}" + (f', "{stated.words}"' if stated.words else "")
            print(f"{stated.figure}: stated in {where}; measured by {stated.measure}")
        return
    names = args.only or [name for name in MEASURES if name != "full-tier" or args.full]
    print(machine(), flush=True)
    failed = False
    with tempfile.TemporaryDirectory() as scratch:
        for name in names:
            what, measure = MEASURES[name]
            where = "; ".join(f"{s.path}" + (f' "{s.words}"' if s.words else "")
                              for s in STATED if s.measure == name) or "not stated"
            before = load()
            try:
                figure = measure(Path(scratch))
            except Exception as error:  # one measure failing leaves the others to run
                figure, failed = f"FAILED: {str(error).strip() or type(error).__name__}", True
            print(f"{name}: {figure}  [{what}; stated in {where}; load before {before}]",
                  flush=True)
        if args.benchmarks:
            for command in sorted({s.measure.removeprefix("command: ") for s in STATED
                                   if s.measure.startswith("command: ")}):
                print(f"$ {command}", flush=True)
                done = subprocess.run([sys.executable, *command.split()[1:]], cwd=REPO)
                failed |= done.returncode != 0
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    with run_end.in_one_line(), process_setup.in_place():
        main()
