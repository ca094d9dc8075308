"""The six lesson notebooks run top to bottom, offline, and are committed without outputs.

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
           "05_why_the_curves_match", "06_from_lightning_1x_to_2x"]
WITH_PLOTS = {"02_the_training_loop", "03_a_real_training_job", "04_lightnings_extras", "05_why_the_curves_match"}


def test_the_six_lessons_are_there_in_order():
    """notebooks/ holds exactly the six lessons of the ladder, numbered in reading order."""
    assert sorted(path.stem for path in (REPO / "notebooks").glob("*.ipynb")) == LESSONS


@pytest.mark.parametrize("lesson", LESSONS)
def test_lesson_runs_and_is_committed_clean(lesson, mnist_dir, monkeypatch):
    """The notebook executes without error (its asserts included), shows its plots, and is stored without outputs."""
    path = REPO / "notebooks" / f"{lesson}.ipynb"
    stored = json.loads(path.read_text())
    assert all(not c.get("outputs") and not c.get("execution_count") for c in stored["cells"] if c["cell_type"] == "code")
    monkeypatch.setenv("MNIST_DATA_DIR", str(mnist_dir))  # the kernel inherits it
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert bool(images) == (lesson in WITH_PLOTS)  # lessons 2-5 draw inline; 1 and 6 print
