"""The nine lessons: stored clean, their code equal to the twins', run offline with their exercises
checked, as pages.

Each lesson runs once, top to bottom, as committed (its exercise cells empty), with each worked
solution from notebooks/solutions/ and one mistake appended at its end: so one run shows that an
empty answer gets "not yet", the solution "correct", and the mistake a verdict that names the
fix. The notebooks' own asserts are the lessons' live checks: an error anywhere fails. The same
runs, without the appended cells, become the lesson pages, which headless Chromium then opens.
MNIST comes from the parity tests' folder (MNIST_DATA_DIR, made absolute for the kernel, which
runs in notebooks/); everything a lesson writes goes to a temporary folder."""

import ast
import html
import json
import os
import re
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

from tests.conftest import REPO
from tools import lesson_pages, reader
from tools.reader import rendered_dom, run_chromium

LESSONS = ["01_pytorch_basics", "02_the_training_loop", "03_a_real_training_job",
           "04_lightnings_extras",
           "05_the_middle_way", "06_why_the_curves_match", "07_migrating_your_own_loop",
           "08_from_lightning_1x_to_2x", "09_a_small_gpt"]
WITH_PLOTS = {"02_the_training_loop", "03_a_real_training_job", "04_lightnings_extras",
              "05_the_middle_way",
              "06_why_the_curves_match", "07_migrating_your_own_loop",
              "09_a_small_gpt"}  # 1 and 8 print
HOLD_THE_TWINS_CODE = ["02_the_training_loop", "03_a_real_training_job", "04_lightnings_extras"]
# One mistake per lesson with exercises: (exercise number, text of the solution, replaced by, words
# of the verdict)
MISTAKES = {
    "02_the_training_loop": (2, "self.total += (labels == 3).sum().item()",
                             "self.total += (predicted == 3).sum().item()", "that is precision"),
    "03_a_real_training_job": (1, '"interval": "step"', '"interval": "epoch"',
                               'it changed only once an epoch, the default "interval"'),
    "04_lightnings_extras": (2, ".to(torch.bfloat16)  # the weights", "  # the weights",
                             "the model's weights are still float32"),
    "05_the_middle_way": (1, "fabric.backward(loss / accumulate)", "fabric.backward(loss)",
                          "divide each loss by `accumulate`"),
    "07_migrating_your_own_loop": (2, "batch_idx, dataloader_idx=0):", "batch_idx):",
                                   "calls validation_step with a third argument"),
    "09_a_small_gpt": (2, '"interval": "step"', '"interval": "epoch"', "once per epoch"),
}
BANNERS = ["GPU available", "TPU available", "💡 Tip", "LitLogger", "| Name", "Trainable params"]
CARVE_NOTE = "are carved from the 10,000-image test split"
NOISE = {  # what no lesson's output may hold, and how to recognise it
    "a progress bar": re.compile(r"\d+%\|[^\n]*\||\d+(?:\.\d+)?(?:it|s)/(?:s|it)\]|Finding best "
                                 r"initial lr"),
    "a temporary path": re.compile(r"/tmp/|/var/folders/|\btmp[a-z0-9_]{6,}\b|this run writes to"),
    "a tip or banner": re.compile("|".join(map(re.escape, BANNERS))),
}


def noise(notebook: nbformat.NotebookNode) -> list[str]:
    """What an executed lesson printed that is not what its cells are about: progress bars,
    temporary paths, tips and banners, warnings on stderr, an epoch line printed twice by one
    cell, the carve note more than once. One entry per finding: (cell number) what."""
    found, notes = [], 0
    for number, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        text = "".join(output.get("text", "") for output in cell.outputs)
        text = text.replace(str(REPO), "REPO")  # the data's own folder is no temporary path,
        for what, pattern in NOISE.items():  # wherever the repository was cloned (/tmp too)
            if pattern.search(text):
                found.append(f"({number}) {what}: {pattern.search(text).group(0)}")
        if any(output.get("name") == "stderr" for output in cell.outputs):
            found.append(f"({number}) stderr: {stdout_or_err(cell, 'stderr')[:80]}")
        epochs = re.findall(r"^epoch \d+:.*$", text, flags=re.M)
        if len(epochs) != len(set(epochs)):
            found.append(f"({number}) an epoch line twice: {epochs[0]}")
        notes += text.count(CARVE_NOTE)
    if notes > 1:
        found.append(f"the carve note {notes} times")
    return found


def stdout_or_err(cell: nbformat.NotebookNode, name: str) -> str:
    return "".join(output.get("text", "") for output in cell.outputs if output.get("name") == name)


def read(lesson: str) -> nbformat.NotebookNode:
    return nbformat.read(REPO / "notebooks" / f"{lesson}.ipynb", as_version=4)


def tagged(notebook: nbformat.NotebookNode, tag: str) -> list[nbformat.NotebookNode]:
    return [cell for cell in notebook.cells if tag in cell.metadata.get("tags", [])]


def solutions(lesson: str) -> list[str]:
    """The worked solutions of a lesson's exercises, in order: the parts of its file after each
    '# Exercise N'."""
    text = (REPO / "notebooks" / "solutions" / f"{lesson}.py").read_text()
    return [part.strip() for part in re.split(r"^# Exercise \d+.*\n", text, flags=re.M)[1:]]


def stdout_of(cell: nbformat.NotebookNode) -> str:
    return "".join(output.get("text", "") for output in cell.outputs
                   if output.get("name") == "stdout")


def test_the_noise_of_round_two_is_caught():
    """Each kind of noise the learners met is found: the LR finder's bar, a run folder under /tmp,
    a tip, a warning, a twin's epoch line printed twice, the carve note in two cells; a quiet
    cell passes."""
    def cell(*outputs):
        return nbformat.v4.new_code_cell(outputs=[nbformat.v4.new_output(
            "stream", name=name, text=text) for name, text in outputs])

    quiet = cell(("stdout", "epoch 0: val_loss 0.6058, val_accuracy 0.8100\nlr 0.001\n"))
    assert noise(nbformat.v4.new_notebook(cells=[quiet])) == []
    noisy = [
        cell(("stderr", "Finding best initial lr:  17%|█▋        | 17/100 [00:00<00:01, "
                        "52.31it/s]")),
        cell(("stdout", "this run writes to /tmp/tmp7vr2hnh9/mnist_feedforward/plain/version_0")),
        cell(("stdout", "💡 Tip: For seamless cloud logging ...")),
        cell(("stdout", "epoch 0: val_loss 0.6, val_accuracy 0.81\nepoch 0: val_loss 0.6, "
                        "val_accuracy 0.81\n")),
        cell(("stdout", f"MNIST ... {CARVE_NOTE}\n")), cell(("stdout", f"{CARVE_NOTE}\n"))]
    found = noise(nbformat.v4.new_notebook(cells=noisy))
    assert [finding.split(":")[0] for finding in found] == [
        "(0) a progress bar", "(0) stderr", "(1) a temporary path", "(2) a tip or banner",
        "(3) an epoch line twice", "the carve note 2 times"], found


def verdict(cell: nbformat.NotebookNode) -> str:
    """The last line a cell printed: an exercise check's verdict (training may print epoch lines
    above it)."""
    return stdout_of(cell).strip().splitlines()[-1]


def mirror_problems(cell_source: str, file_source: str, leaves_out: list[str] = ()) -> list[str]:
    """How a cell that mirrors a file differs from it: each def or class must be the file's own,
    character for character (a method may be shown alone, unindented); a class may leave out the
    methods named in `leaves_out` (a lesson shows them where they are the point), and no
    other; each other statement must be lines of the file, in a row (indentation aside)."""
    problems = []
    cell_lines, file_lines = cell_source.splitlines(), file_source.splitlines()
    file_tree = ast.parse(file_source)
    definitions = {node.name: node for node in ast.walk(file_tree)
                   if isinstance(node, (ast.FunctionDef, ast.ClassDef))}

    def text(lines, node):
        first = node.decorator_list[0].lineno if getattr(node, "decorator_list",
                                                         None) else node.lineno
        return textwrap.dedent("\n".join(lines[first - 1:node.end_lineno]))

    def without(lines, node, names):
        """A class's text without the methods `names` (and the blank line before each)."""
        dropped = set()
        for child in node.body:
            if isinstance(child, ast.FunctionDef) and child.name in names:
                first = child.decorator_list[0].lineno if child.decorator_list else child.lineno
                dropped |= set(range(first - 1, child.end_lineno + 1))  # and the blank after
        kept = [lines[number] for number in range(node.lineno - 1, node.end_lineno)
                if number not in dropped]
        return textwrap.dedent("\n".join(kept)).strip()

    stripped = [line.strip() for line in file_lines]
    for node in ast.parse(cell_source).body:
        mine = text(cell_lines, node)
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            theirs = definitions.get(node.name)
            if isinstance(node, ast.ClassDef) and theirs and leaves_out:
                shown = {child.name for child in node.body if isinstance(child, ast.FunctionDef)}
                missing = {child.name for child in theirs.body
                           if isinstance(child, ast.FunctionDef)} - shown
                if missing != set(leaves_out) or without(
                        file_lines, theirs, missing) != without(cell_lines, node, ()):
                    problems.append(f"{node.name} is not the file's, less {sorted(leaves_out)}")
            elif theirs is None or text(file_lines, theirs) != mine:
                problems.append(f"{node.name} is not the file's")
        else:
            run = [line.strip() for line in mine.splitlines()]
            if not any(stripped[i:i + len(run)] == run for i in range(len(stripped))):
                problems.append(f"line {node.lineno} is not the file's: {run[0]}")
    return problems


def test_the_nine_lessons_are_there_in_order():
    """notebooks/ holds exactly the nine lessons, numbered in reading order."""
    assert [path.stem for path in lesson_pages.lessons()] == LESSONS


@pytest.mark.parametrize("lesson", LESSONS)
def test_lesson_is_stored_without_outputs_and_opens_and_closes_as_a_lesson(lesson):
    """No outputs or counts are committed; the lesson opens with what you will learn and closes
    with a summary (lessons 2-7 and 9), and each code cell is announced by prose."""
    stored = json.loads((REPO / "notebooks" / f"{lesson}.ipynb").read_text())
    assert all(not c.get("outputs") and not c.get("execution_count") for c in stored["cells"]
               if c["cell_type"] == "code")
    notebook = read(lesson)
    if lesson in LESSONS[1:7] + LESSONS[8:]:
        assert "What you will learn" in notebook.cells[0].source
        assert "## Summary" in notebook.cells[-1].source
        exercise_or_check = [c for c in notebook.cells if {"exercise",
                                                           "check"} & set(c.metadata.get("tags",
                                                                                         []))]
        # the setup cell needs no prose
        for before, cell in zip(notebook.cells[1:], notebook.cells[2:]):
            if cell.cell_type == "code" and cell not in exercise_or_check:
                announced = before.cell_type == "markdown" or before in exercise_or_check
                assert announced, cell.source[:80]


@pytest.mark.parametrize("lesson", HOLD_THE_TWINS_CODE)
def test_the_cells_that_mirror_a_twin_hold_its_code_exactly(lesson):
    """Each cell marked `mirrors` holds the named file's code: so a lesson and its twins never drift
    apart.

    Lessons 2 to 4 write out both sides: code from a plain_pytorch/ file and from a
    lightning_version/ one."""
    mirrors = [cell for cell in read(lesson).cells if "mirrors" in cell.metadata]
    files = {cell.metadata["mirrors"].split("/")[0] for cell in mirrors}
    assert {"plain_pytorch", "lightning_version"} <= files
    for cell in mirrors:
        assert mirror_problems(cell.source, (REPO / cell.metadata["mirrors"]).read_text(),
                               cell.metadata.get("leaves_out", [])) == [], cell.metadata


def test_a_cell_that_drifted_from_its_twin_is_caught():
    """The mirror check fails on a changed line inside a def, and on a statement the file does
    not have."""
    twin = (REPO / "plain_pytorch" / "mnist_feedforward.py").read_text()
    cell = next(c for c in read("02_the_training_loop").cells if "def train_one_epoch" in c.source)
    assert mirror_problems(cell.source, twin) == []
    drifted = cell.source.replace("optimizer.zero_grad()", "optimizer.zero_grad(set_to_none=False)")
    assert mirror_problems(drifted, twin) == ["train_one_epoch is not the file's"]
    assert mirror_problems("model = FeedForward(128)",
                           twin) == ["line 1 is not the file's: model = FeedForward(128)"]


def test_a_class_may_leave_out_only_the_methods_its_cell_names():
    """Lesson 3 shows LitConvNet without its nan guard, which a later cell shows: leaving out
    exactly the named methods passes; leaving out another, or changing one, does not."""
    twin = (REPO / "lightning_version" / "cnn_classifier.py").read_text()
    cell = next(c for c in read("03_a_real_training_job").cells
                if "class LitConvNet" in c.source)
    guard = cell.metadata["leaves_out"]
    assert guard == ["on_train_batch_end", "on_validation_epoch_end"]
    assert mirror_problems(cell.source, twin, guard) == []
    shorter = cell.source.replace(cell.source[cell.source.index("    def predict_step"):
                                              cell.source.index("    def configure_optim")], "")
    assert mirror_problems(shorter, twin, guard) == [f"LitConvNet is not the file's, less {guard}"]
    changed = cell.source.replace("self.log(\"train_loss\", loss)", "self.log(\"loss\", loss)")
    assert mirror_problems(changed, twin, guard) == [f"LitConvNet is not the file's, less {guard}"]


@pytest.fixture(scope="session")
def runs(mnist_dir) -> dict[str, tuple[nbformat.NotebookNode, int]]:
    """Each lesson run once as committed, then its solutions and its mistake appended: (notebook,
    cells appended).

    Two lessons run at a time, each kernel on one thread (OMP_NUM_THREADS=1), so that the two
    cores stay busy while a kernel starts: every check of a lesson compares runs made inside its
    own kernel, so how many threads it has changes no verdict."""
    appended = {}
    for lesson in LESSONS:
        after = []
        if lesson in MISTAKES:
            checks = [cell.source for cell in tagged(read(lesson), "check")]
            answers = solutions(lesson)
            number, right, wrong, _ = MISTAKES[lesson]
            mistake = answers[number - 1].replace(right, wrong)
            assert mistake != answers[number - 1]
            after = [f"{answer}\n\n{check}" for answer, check in zip(answers, checks)]
            after.append(f"{mistake}\n\n{checks[number - 1]}")
        appended[lesson] = after
    # the kernels inherit these
    wanted = {"MNIST_DATA_DIR": str(mnist_dir), "OMP_NUM_THREADS": "1"}
    saved = {name: os.environ.get(name) for name in wanted}
    os.environ.update(wanted)
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            notebooks = pool.map(lambda lesson: lesson_pages.execute(
                REPO / "notebooks" / f"{lesson}.ipynb", appended[lesson]), LESSONS)
            return {lesson: (notebook, len(appended[lesson]))
                    for lesson, notebook in zip(LESSONS, notebooks)}
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name)
            else:
                os.environ[name] = value


@pytest.mark.slow
@pytest.mark.parametrize("lesson", LESSONS)
def test_lesson_runs_offline_and_shows_each_plot_once_and_quietly(lesson, runs):
    """The lesson runs without an error (its own asserts included); lessons 2-7 and 9 draw, each
    plot once; its outputs hold no noise: no progress bar, temporary path, tip, banner, model
    summary, warning, repeated epoch line or second carve note."""
    notebook, _ = runs[lesson]
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o["data"]["image/png"] for o in outputs if "image/png" in o.get("data", {})]
    assert bool(images) == (lesson in WITH_PLOTS) and len(set(images)) == len(images)
    assert noise(notebook) == []


@pytest.mark.slow
@pytest.mark.parametrize("lesson", list(MISTAKES))
def test_exercises_fail_when_empty_pass_with_the_solution_and_name_the_fix_of_a_mistake(lesson,
                                                                                        runs):
    """At least two exercises, each an empty cell followed by its check and with a worked
    solution. As committed each check says "not yet"; each solution gets "correct", bit for bit;
    the mistake gets a verdict naming the fix."""
    notebook, appended = runs[lesson]
    exercises, checks = tagged(read(lesson), "exercise"), tagged(notebook, "check")
    assert len(exercises) >= 2
    assert len(checks) == len(exercises) == len(solutions(lesson)) == appended - 1
    for exercise, check in zip(exercises, checks):
        assert notebook.cells.index(check) == read(lesson).cells.index(exercise) + 1
        assert "..." in exercise.source and verdict(check).startswith("not yet: "), verdict(check)
    *right, wrong = (verdict(cell) for cell in notebook.cells[-appended:])
    assert all(line.startswith("correct: ") and "bit for bit" in line for line in right), right
    assert wrong.startswith("not yet: ") and MISTAKES[lesson][3] in wrong, wrong


@pytest.fixture(scope="module")
def pages(runs, tmp_path_factory) -> Path:
    """The site: the reader's pages and the lesson pages, made from the runs without their
    appended cells."""
    folder = tmp_path_factory.mktemp("site")
    executed = {}
    for lesson, (notebook, appended) in runs.items():
        executed[lesson] = nbformat.from_dict(notebook)
        executed[lesson].cells = executed[lesson].cells[:len(executed[lesson].cells) - appended]
    reader.build(folder, lesson_pages.build(folder, executed))
    return folder


@pytest.mark.slow
def test_the_index_lists_the_ladder_then_every_lesson_in_order(pages):
    """index.html names the steps first, then links the nine lesson pages in reading order.
    """
    index = (pages / "index.html").read_text()
    links = re.findall(r'href="(0\d_[a-z0-9_]+)\.html"', index)
    assert links == LESSONS and index.index("Step 3") < index.index(LESSONS[0])


@pytest.mark.slow
def test_every_link_inside_the_site_resolves(pages):
    """Every href and src of every page names a file that exists (a page, a plot, a file of the
    repository) and, after a #, an id on that page."""
    for page in pages.glob("*.html"):
        text = page.read_text()
        for target in map(html.unescape, re.findall(r'(?:href|src)="([^"]+)"', text)):
            # offline, no inline data
            assert not target.startswith(("http:", "https:", "data:")), (page.name, target)
            path, _, anchor = target.partition("#")
            linked = (pages / path).resolve() if path else page
            assert linked.exists(), (page.name, target)
            if anchor and linked.suffix == ".html":
                ids = map(html.unescape, re.findall(r'id="([^"]+)"', linked.read_text()))
                assert anchor in ids, (page.name, target)


@pytest.mark.slow
def test_every_lesson_page_renders_with_its_cells_and_plots(pages, runs, browser):
    """Chromium shows each lesson page with its title, its code and output cells, and one <img>
    per plot."""
    for lesson in LESSONS:
        notebook, appended = runs[lesson]
        shown = notebook.cells[:len(notebook.cells) - appended]
        dom = rendered_dom(pages / f"{lesson}.html")
        assert lesson_pages.title(notebook) in dom
        plots = sum("image/png" in o.get("data", {}) for c in shown if c.cell_type == "code"
                    for o in c.outputs)
        assert dom.count("<img ") == plots
        assert dom.count('class="cell border-box-sizing code_cell') == sum(c.cell_type == "code"
                                                                           for c in shown)


@pytest.mark.slow
def test_every_plot_is_an_image_that_loads_in_the_browser(pages, browser):
    """Each <img> of the lesson pages, loaded by Chromium, is a picture with a width: none is
    broken."""
    sources = sorted({src for page in pages.glob("0*.html")
                      for src in re.findall(r'<img [^>]*src="([^"]+)"', page.read_text())})
    assert sources
    probe = pages / "probe.html"  # the test's own page, with a script: the site's pages have none
    probe.write_text("<html><body>" + "".join(
        f'<img src="{src}" onload="this.setAttribute(\'data-width\', this.naturalWidth)" '
        f'onerror="this.setAttribute(\'data-width\', \'broken\')">'
        for src in sources) + "</body></html>")
    dom = run_chromium(["--dump-dom", "--virtual-time-budget=10000"], probe).stdout
    probe.unlink()
    widths = re.findall(r'data-width="([^"]+)"', dom)
    assert len(widths) == len(sources) and all(width.isdigit()
                                               and int(width) > 100 for width in widths), widths


@pytest.mark.slow
def test_the_command_runs_the_lessons_into_pages_listed_in_the_index(tmp_path, monkeypatch,
                                                                     capfd):
    """`python -m tools.reader --out DIR --lessons` runs each lesson and writes its page and
    plot, listed in the index after the ladder (here one small lesson of two cells; the nine
    real ones are the `pages` fixture's). While it runs it says which lesson it is on, and the
    kernel's start-up warnings stay out."""
    lesson = tmp_path / "09_a_small_lesson.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Lesson 9: a small lesson\n\n"
                                      "It draws a line and prints its length."),
        nbformat.v4.new_code_cell("%matplotlib inline\nimport matplotlib.pyplot as plt\n"
                                  "plt.plot([0, 1], [0, 1])\nprint('length', 2 ** 0.5)")]), lesson)
    monkeypatch.setattr(lesson_pages, "lessons", lambda: [lesson])
    monkeypatch.setattr(sys, "argv", ["reader", "--out", str(tmp_path / "site"), "--lessons"])
    reader.main()
    out, err = capfd.readouterr()
    progress = r"^lesson 1 of 1: 09_a_small_lesson\.ipynb \.\.\. \d+ s$"
    assert re.search(progress, out, flags=re.M), out
    assert "IPKernelApp" not in err and "WARNING" not in err, err
    index = (tmp_path / "site" / "index.html").read_text()
    assert '<a href="09_a_small_lesson.html">Lesson 9: a small lesson</a>' in index
    assert index.index("Step 3") < index.index("Lesson 9")
    page = (tmp_path / "site" / "09_a_small_lesson.html").read_text()
    assert "length 1.414" in page and "<img " in page
    assert (tmp_path / "site" / "09_a_small_lesson_1_1.png").exists()


@pytest.mark.slow
def test_a_lesson_that_fails_is_one_line_status_2_and_writes_nothing(tmp_path, monkeypatch, capsys):
    """A lesson that stops with an error: one line naming the lesson and the error, exit status
    2, no folder."""
    broken = tmp_path / "09_broken.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Lesson 9"),
                                                   nbformat.v4.new_code_cell("1 / 0")]), broken)
    monkeypatch.setattr(lesson_pages, "lessons", lambda: [broken])
    monkeypatch.setattr(sys, "argv", ["reader", "--out", str(tmp_path / "site"), "--lessons"])
    with pytest.raises(SystemExit) as exit_info:
        reader.main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert "09_broken.ipynb stopped with ZeroDivisionError" in err
    assert not (tmp_path / "site").exists()
