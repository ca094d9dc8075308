"""The seven lesson notebooks run top to bottom, offline, and are committed without outputs.

Each notebook's own asserts are the lesson's live checks: an error anywhere fails the test.
MNIST comes from the same folder as the parity tests (MNIST_DATA_DIR, made absolute for the
kernel, which runs in notebooks/); everything a notebook writes goes to a temporary folder.
"""

import json

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import REPO

LESSONS = ["01_pytorch_basics", "02_the_training_loop", "03_a_real_training_job", "04_lightnings_extras",
           "05_the_middle_way", "06_why_the_curves_match", "07_from_lightning_1x_to_2x"]
WITH_PLOTS = {"02_the_training_loop", "03_a_real_training_job", "04_lightnings_extras", "05_the_middle_way",
              "06_why_the_curves_match"}


def test_the_six_lessons_are_there_in_order():
    """notebooks/ holds exactly the seven lessons, numbered in reading order."""
    assert sorted(path.stem for path in (REPO / "notebooks").glob("*.ipynb")) == LESSONS


def execute(lesson: str, exercise: str | None = None, after: str | None = None) -> nbformat.NotebookNode:
    """Run the lesson as a kernel would (in notebooks/); `exercise`, if given, is the source of its exercise cell,
    and `after`, if given, one more cell run at the end."""
    path = REPO / "notebooks" / f"{lesson}.ipynb"
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if exercise is not None and "exercise" in cell.metadata.get("tags", []):
            cell.source = exercise
    if after is not None:
        notebook.cells.append(nbformat.v4.new_code_cell(after))
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    return notebook


def check_said(notebook: nbformat.NotebookNode) -> str:
    """The verdict the exercise's check cell printed: its last line (training may print epoch lines above it)."""
    cell = next(c for c in notebook.cells if "check" in c.metadata.get("tags", []))
    return "".join(o.get("text", "") for o in cell.outputs if o.get("name") == "stdout").strip().splitlines()[-1]


@pytest.mark.parametrize("lesson", LESSONS)
def test_lesson_runs_and_is_committed_clean(lesson, mnist_dir, monkeypatch):
    """The notebook executes without error (its asserts included), shows its plots, and is stored without outputs."""
    stored = json.loads((REPO / "notebooks" / f"{lesson}.ipynb").read_text())
    assert all(not c.get("outputs") and not c.get("execution_count") for c in stored["cells"] if c["cell_type"] == "code")
    monkeypatch.setenv("MNIST_DATA_DIR", str(mnist_dir))  # the kernel inherits it
    notebook = execute(lesson)
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert bool(images) == (lesson in WITH_PLOTS)  # lessons 2-6 draw inline; 1 and 7 print
    if lesson == "05_the_middle_way":  # Lightning's start-up lines ("GPU available: ...") are quiet there
        assert not [o for o in outputs if o.get("name") == "stderr" and "GPU available" in o["text"]]
    if any("exercise" in c.metadata.get("tags", []) for c in notebook.cells):  # as committed: the cell is empty
        assert check_said(notebook).startswith("not yet: ")


def test_the_middle_way_exercise_passes_with_the_worked_solution_and_names_a_wrong_one(mnist_dir, monkeypatch):
    """Lesson 5's check says "correct" for notebooks/solutions/05_the_middle_way.py; for the solution without the
    division by `accumulate` it names the batch where the runs part and the fix. (Empty, it says "not yet": above.)"""
    monkeypatch.setenv("MNIST_DATA_DIR", str(mnist_dir))
    solution = (REPO / "notebooks" / "solutions" / "05_the_middle_way.py").read_text()
    undivided = solution.replace("fabric.backward(loss / accumulate)", "fabric.backward(loss)")
    assert undivided != solution
    notebook = execute("05_the_middle_way", solution, after=undivided + "\nprint(check_exercise(train_accumulating))")
    said = check_said(notebook)
    assert said.startswith("correct: all 64 losses and 2 validations equal the Trainer's, bit for bit"), said
    wrong = "".join(o.get("text", "") for o in notebook.cells[-1].outputs if o.get("name") == "stdout")
    wrong = wrong.strip().splitlines()[-1]
    assert wrong.startswith("not yet: batch 3 (place 0 in its window)") and "divide each loss by `accumulate`" in wrong, wrong
