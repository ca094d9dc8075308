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


def execute(lesson: str, after: list[str] = ()) -> nbformat.NotebookNode:
    """Run the lesson as a kernel would (in notebooks/), with the cells `after` run at its end."""
    path = REPO / "notebooks" / f"{lesson}.ipynb"
    notebook = nbformat.read(path, as_version=4)
    notebook.cells += [nbformat.v4.new_code_cell(source) for source in after]
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    return notebook


def verdict(cell: nbformat.NotebookNode) -> str:
    """The last line a cell printed: an exercise check's verdict (training may print epoch lines above it)."""
    return "".join(o.get("text", "") for o in cell.outputs if o.get("name") == "stdout").strip().splitlines()[-1]


@pytest.mark.parametrize("lesson", LESSONS)
def test_lesson_runs_and_is_committed_clean(lesson, mnist_dir, monkeypatch):
    """The notebook executes without error (its asserts included), shows its plots, and is stored without outputs.

    A lesson with an exercise (a worked solution in notebooks/solutions/) is checked three ways in the same run: as
    committed, its check says "not yet"; the solution, run after the lesson, passes the check; and the solution with
    one mistake gets a verdict that names where the runs part and the fix.
    """
    stored = json.loads((REPO / "notebooks" / f"{lesson}.ipynb").read_text())
    assert all(not c.get("outputs") and not c.get("execution_count") for c in stored["cells"] if c["cell_type"] == "code")
    monkeypatch.setenv("MNIST_DATA_DIR", str(mnist_dir))  # the kernel inherits it
    solution_file = REPO / "notebooks" / "solutions" / f"{lesson}.py"
    after = []
    if solution_file.exists():  # lesson 5: accumulating gradients with Fabric; the mistake: no division
        solution = solution_file.read_text()
        undivided = solution.replace("fabric.backward(loss / accumulate)", "fabric.backward(loss)")
        assert undivided != solution
        after = [f"{answer}\nprint(check_exercise(train_accumulating))" for answer in (solution, undivided)]
    notebook = execute(lesson, after)
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert bool(images) == (lesson in WITH_PLOTS)  # lessons 2-6 draw inline; 1 and 7 print
    if lesson == "05_the_middle_way":  # Lightning's start-up lines ("GPU available: ...") are quiet there
        assert not [o for o in outputs if o.get("name") == "stderr" and "GPU available" in o["text"]]
    checks = [c for c in notebook.cells if "check" in c.metadata.get("tags", [])]
    assert bool(checks) == solution_file.exists()  # an exercise always comes with its worked solution
    for check in checks:  # as committed, the exercise cell is empty
        assert verdict(check).startswith("not yet: train_accumulating returned None"), verdict(check)
    if after:
        right, wrong = (verdict(cell) for cell in notebook.cells[-2:])
        assert right == "correct: all 64 losses and 2 validations equal the Trainer's, bit for bit", right
        assert wrong.startswith("not yet: batch 3 (place 0 in its window)"), wrong
        assert "divide each loss by `accumulate`" in wrong, wrong
