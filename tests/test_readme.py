"""README tells the truth about how to run things."""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import pytest

from tests.conftest import PACKAGES, REPO, as_a_command, twin


def readme_commands() -> list[str]:
    return re.findall(r"^(python3 -m venv .*)$", (REPO / "README.md").read_text(),
                      flags=re.MULTILINE)


def test_ci_runs_readme_test_command_word_for_word():
    """.ci/run runs exactly the test command README gives a learner."""
    test_commands = [c for c in readme_commands() if "pytest" in c]
    assert len(test_commands) == 1
    assert test_commands[0] in (REPO / ".ci" / "run").read_text().splitlines()


def test_readme_main_job_runs_the_comparison():
    """README's main-job command runs every twin through tools.compare."""
    assert any("-m tools.compare" in c for c in readme_commands())


def test_readme_one_liner_table_is_what_the_code_counts():
    """README's "The one-liner and what it does" table is exactly what tools/one_liners.py counts
    now."""
    from tools.ladder import doc_block
    from tools.one_liners import table

    assert doc_block("one-liners") == table()


def test_readme_ladder_table_is_what_the_code_counts():
    """README's ladder table (steps, flags, code lines of each twin) is exactly what
    tools/ladder.py counts now."""
    from tools.ladder import doc_block, table

    assert doc_block("ladder") == table()


def test_readme_main_job_table_has_the_step_counts_the_defaults_give():
    """The steps column of README's main-job table is what each example's defaults give on 8,000
    training samples (step 4 counts its steps itself: --max-steps)."""
    import math

    from shared.flags import DEFAULTS
    from tools.ladder import doc_block

    expected = {name: defaults.get("max_steps")
                or defaults["epochs"] * math.ceil(8000 / defaults["batch_size"])
                for name, defaults in DEFAULTS.items()}
    rows = [line.split("|") for line in doc_block("main-job").splitlines() if line.startswith("| ")]
    found = {cells[1].strip(): int(cells[2]) for cells in rows if cells[1].strip() in DEFAULTS}
    assert found == expected


def test_which_one_code_line_table_is_what_the_code_counts():
    """docs/which-one.md's table (each twin's code lines, with the by_hand/ files it imports) is
    what tools/ladder.py counts now."""
    from tools.ladder import code_lines_table, doc_block

    assert doc_block("code-lines") == code_lines_table()


# README's code blocks, run or checked as a reader would type them.

RUNNERS = ("python", "python3", "torchrun", ".venv/bin/python", ".venv/bin/pip")
LAYOUT = "README.md  requirements.txt"  # the "Where things are" block opens so: a map, not commands


def code_blocks() -> list[tuple[str, list[str]]]:
    """README's fenced blocks, each as (the paragraph just above it, its lines)."""
    text = (REPO / "README.md").read_text()
    blocks = []
    for match in re.finditer(r"^```\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL):
        above = text[:match.start()].rstrip().split("\n\n")[-1]
        blocks.append((above, match.group(1).splitlines()))
    return blocks


def command_lines() -> list[str]:
    """Every command line of README's code blocks, its trailing `# comment` dropped."""
    lines = []
    for _, block in code_blocks():
        if block[0].startswith(LAYOUT):
            continue
        lines += [re.sub(r"\s+# .*$", "", line) for line in block if line.strip()]
    return lines


def runs_to_try() -> list[str]:
    """The lines of the block after "Some runs to try", as README writes them."""
    (block,) = [lines for above, lines in code_blocks() if "Some runs to try" in above]
    return block


def python_invocation(words: list[str]) -> tuple[str, list[str]] | None:
    """(module, flags) of `python -m M ...`, `python FILE.py ...` or `torchrun ... -m M ...`."""
    if words[0] == "torchrun":
        start = words.index("-m")
        return words[start + 1], words[start + 2:]
    if Path(words[0]).name not in ("python", "python3"):
        return None
    if words[1] == "-m":
        return words[2], words[3:]
    return words[1].removesuffix(".py").replace("/", "."), words[2:]


def test_every_readme_code_block_is_commands_or_the_layout():
    """Each fenced block of README is either commands (each line starts with a runner) or the
    map."""
    for above, block in code_blocks():
        if block[0].startswith(LAYOUT):
            parent = REPO
            for line in block[1:]:  # each folder the map names is there; indented: in the one above
                folder = (parent if line.startswith(" ") else REPO) / line.split()[0]
                assert folder.is_dir(), line
                parent = parent if line.startswith(" ") else folder
            continue
        for line in block:
            assert line.split()[0] in RUNNERS, (above[-60:], line)


def test_each_readme_command_names_files_and_flags_that_exist():
    """Each `python -m M` in README's blocks names a module that exists and flags that it takes;
    each pip line installs files that exist, at the versions requirements.txt pins."""
    from importlib.util import find_spec

    from shared.flags import build_parser

    pins = dict(line.split("==") for line in (REPO / "requirements.txt").read_text().splitlines()
                if "==" in line)
    help_of = {}
    for line in command_lines():
        for part in line.split("&&"):
            words = shlex.split(part)
            if words[0] == ".venv/bin/pip":
                for i, word in enumerate(words):
                    if words[i - 1] in ("-r", "-e"):
                        assert (REPO / word).exists(), line
                    if "==" in word:
                        name, version = word.split("==")
                        assert pins[name] == version, word  # the CPU build of the pinned versions
                continue
            invocation = python_invocation(words)
            # python3 -m venv: the standard library
            if invocation is None or invocation[0] == "venv":
                continue
            module, flags = invocation
            assert find_spec(module) is not None, line
            package, _, example = module.partition(".")
            if package in PACKAGES:
                build_parser(example).parse_args(flags)  # an unknown flag or bad value: SystemExit
            elif module.startswith("tools."):
                if module not in help_of:
                    help_of[module] = subprocess.run([sys.executable, "-m", module, "--help"],
                                                     capture_output=True, text=True,
                                                     cwd=REPO).stdout
                for flag in (f for f in flags if f.startswith("--")):
                    assert f" {flag}" in help_of[module], (line, flag)


def test_readme_mentions_of_python_m_name_modules_that_exist():
    """Every `python -m M` README names, in a block or in its prose, is a module of this repository
    or of its requirements."""
    from importlib.util import find_spec

    named = set(re.findall(r"python -m ([\w.]+)", (REPO / "README.md").read_text()))
    assert {"tools.compare", "tools.reader", "tools.ladder"} <= named
    assert [module for module in sorted(named) if find_spec(module) is None] == []


def test_lightning_twin_prints_no_tip_and_no_model_summary(mnist_dir, capfd):
    """A Lightning twin's output holds its epochs, not Lightning's litlogger tip or model
    summary."""

    with as_a_command():
        twin("lightning_version", "mnist_feedforward").main(
            ["--data-dir", str(mnist_dir), "--epochs", "1", "--limit-train", "64", "--limit-val",
             "64",
             "--no-progress"])
    out, err = capfd.readouterr()
    assert "epoch 0: val_loss" in out
    for banner in LIGHTNING_BANNERS:
        assert banner not in out + err, banner


LIGHTNING_BANNERS = ["💡 Tip", "litlogger", "litmodels", "| Name", "Trainable params", "FLOPs"]


def copy_of_the_repository(folder: Path) -> Path:
    """The repository's tracked files (`git ls-files`), copied into `folder`: a fresh clone."""
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.split("\0")
    for name in filter(None, tracked):
        if (REPO / name).is_file():  # a file deleted but not yet committed is left out
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, folder / name)
    return folder


def as_a_reader_runs_it(line: str, cwd: Path, env: dict | None = None
                        ) -> subprocess.CompletedProcess:
    """One README line, run by a shell in `cwd`, with this environment's python and torchrun first
    on PATH (as after `source .venv/bin/activate`); `env`: variables to add."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
    return subprocess.run(line, shell=True, cwd=cwd, capture_output=True, text=True,
                          env=dict(os.environ, PATH=path, **(env or {})))


@pytest.mark.slow
def test_readme_runs_to_try_work_in_order_on_a_fresh_clone(tmp_path):
    """README's "Some runs to try", run as written, top to bottom, in a fresh copy: each exits 0
    (the resume line finds the checkpoint the line above it wrote), and no Lightning tip or
    model summary is printed.

    Two lines at a time, in order, one thread each (so that the two do not wait on each other's
    threads); a line that resumes starts once every line above it has ended, as it would when
    typed one after the other."""
    clone = copy_of_the_repository(tmp_path / "clone")
    lines, started = runs_to_try(), []
    with ThreadPoolExecutor(max_workers=2) as pool:
        for line in lines:
            if "--resume" in line:  # it reads what a line above wrote
                wait(started)
            started.append(pool.submit(as_a_reader_runs_it, line, clone,
                                       {"OMP_NUM_THREADS": "1"}))
    for line, done in zip(lines, (future.result() for future in started)):
        assert done.returncode == 0, (line, done.stderr[-2000:])
        assert "Traceback" not in done.stdout + done.stderr, line
        for banner in LIGHTNING_BANNERS:
            assert banner not in done.stdout + done.stderr, (line, banner)


@pytest.mark.slow
def test_readme_twin_runs_either_way_and_the_reader_builds(tmp_path):
    """The two ways to run a twin (with -m from any folder, by its path from the root) and the
    reader's command work as README writes them, in a fresh copy."""
    clone = copy_of_the_repository(tmp_path / "clone")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (any_folder, from_root), = [[re.sub(r"\s+# .*$", "", line) for line in block]
                                for above, block in code_blocks() if "any twin runs" in above]
    lines = [(any_folder, elsewhere), (from_root, clone)]
    lines += [(line,
               clone) for line in command_lines() if line == "python -m tools.reader --out site"]
    assert len(lines) == 3
    with ThreadPoolExecutor(max_workers=len(lines)) as pool:  # the three at once, one thread each
        ended = list(pool.map(lambda line_and_cwd: as_a_reader_runs_it(
            *line_and_cwd, {"OMP_NUM_THREADS": "1"}), lines))
    for (line, _), done in zip(lines, ended):
        assert done.returncode == 0, (line, done.stderr[-2000:])
    assert (clone / "site" / "index.html").is_file()


# Every time the pages state is one that `python -m tools.timings` measures.

TIME = re.compile(r"\d[\d,.]*\s?(?:s|ms|min|minutes?|seconds?)\b|half a minute|a minute|seconds|"
                  r"minutes", flags=re.IGNORECASE)
# how long reading takes: no machine measures it
READ_TIME = re.compile(r"about \d+ minutes to read")


def stated_text(path: Path) -> str:
    """A page's prose and tables, line breaks as spaces, inline code left out (`seconds` is a
    key)."""
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text())["cells"]
        text = "\n".join("".join(cell["source"]) for cell in cells
                         if cell["cell_type"] == "markdown")
    else:
        text = path.read_text()
    text = re.sub(r"```.*?```", " ", text, flags=re.DOTALL)
    return " ".join(re.sub(r"`[^`\n]*`", " ", text).split())


def test_every_time_the_pages_state_is_measured_by_tools_timings():
    """Each time README, docs/ and the lessons state is in tools.timings' list, with the words
    it is stated in; each listed place still states it; each listed measure exists."""
    from tools.timings import MEASURES, STATED

    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")),
             *sorted((REPO / "notebooks").glob("*.ipynb"))]
    unlisted = []
    for page in pages:
        name = str(page.relative_to(REPO))
        text = READ_TIME.sub(" ", stated_text(page))
        listed = [s for s in STATED if s.path == name]
        if any(not s.words for s in listed):  # every time in the page comes from one tool
            continue
        spans = [m.span() for s in listed for m in re.finditer(re.escape(s.words), text)]
        for found in TIME.finditer(text):
            if not any(start <= found.start() and found.end() <= end for start, end in spans):
                unlisted.append((name, text[max(0, found.start() - 50):found.end() + 10]))
    assert unlisted == []
    for stated in STATED:
        assert stated.words in stated_text(REPO / stated.path), stated
        assert stated.measure in MEASURES or stated.measure.startswith("command: python -m tools.")


def test_tools_timings_lists_each_figure_and_gives_the_machine(capsys):
    """`--list` names each figure and its place without running anything; the machine line gives
    the cores, the CPU and the load average."""
    from tools import timings

    timings.main(["--list"])
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == len(timings.STATED)
    assert ('stated in README.md, "about 11 minutes on 2 CPU cores"; measured by full-tier'
            in listed[1])
    header = timings.machine()
    assert f"{os.cpu_count()} cores" in header and "load average " in header


@pytest.mark.slow
def test_tools_timings_measures_a_lesson_and_prints_it_with_its_load(tmp_path):
    """`python -m tools.timings --only 01_pytorch_basics` prints the machine, then one figure."""
    done = subprocess.run([sys.executable, "-m", "tools.timings", "--only", "01_pytorch_basics"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    machine, figure = done.stdout.splitlines()
    assert machine.startswith(f"machine: {os.cpu_count()} cores, ")
    assert re.fullmatch(r"01_pytorch_basics: \d+ s  \[lesson 01_pytorch_basics, run top to bottom; "
                        r"stated in not stated; load before [\d. ]+\]", figure), figure
