"""The lesson notebooks run top to bottom, and are committed without outputs."""

import json

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_there_are_lesson_notebooks():
    """The notebooks/ folder holds at least one lesson."""
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_and_is_committed_clean(path):
    """Each notebook executes without error (its own asserts included) and is stored without outputs."""
    stored = json.loads(path.read_text())
    assert all(not c.get("outputs") and not c.get("execution_count") for c in stored["cells"] if c["cell_type"] == "code")
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("identical training losses: True" in o.get("text", "") for o in outputs)
