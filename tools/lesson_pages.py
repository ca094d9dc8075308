"""The lessons as web pages: every notebook run offline, top to bottom, with outputs and plots.

    python -m tools.reader --out site --lessons   # the reader's pages, then every lesson

While it runs it says which lesson it is on ("lesson 3 of 9: ... 41 s"), and nothing else: the
kernels run with their own log at ERROR, so the kernel's start-up warnings stay out.

Each notebook in notebooks/ runs as a learner runs it: in notebooks/, on the data the repository
ships, with no network. Its page, LESSON.html, sits beside the reader's pair pages and shows every
cell with what it printed; each plot is a PNG file beside the page (LESSON_CELL_N.png). A link to
another lesson goes to that lesson's page, and a link to a file of the repository
(`../docs/parity.md`) is rewritten to reach that file from the output folder. Each page links
the index and the lessons before and after it. The committed notebooks stay without outputs.

The pages are plain HTML and CSS, like the reader's: no server, no JavaScript.
tests/test_notebooks.py opens them in headless Chromium and checks every plot and link.
"""

import html
import os
import re
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbconvert import HTMLExporter
from pygments.formatters import HtmlFormatter

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 60em; color: #222;
  line-height: 1.45; }
nav { margin: 0.5em 0 1.5em; }
code, pre { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 13px; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; margin: 0; }
div.input_area { background: #f6f8fa; border-left: 3px solid #c8d1dc; padding: 0.5em 0.8em;
  margin: 0.8em 0 0.3em; }
div.output_area { padding: 0.2em 0.8em; }
div.output_stderr { background: #fff3f0; }
div.output_area img { max-width: 100%; }
div.text_cell_render h1 { font-size: 1.6em; }
div.text_cell_render h2 { font-size: 1.25em; border-bottom: 1px solid #ddd; margin-top: 1.6em; }
div.text_cell_render h3 { font-size: 1.05em; margin-top: 1.4em; }
a.anchor-link { display: none; }
"""


def lessons() -> list[Path]:
    """The lesson notebooks, in reading order."""
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def title(notebook: nbformat.NotebookNode) -> str:
    """The lesson's heading: the first line of its first cell, without the `#` and the backticks."""
    return notebook.cells[0].source.splitlines()[0].lstrip("# ").replace("`", "").strip()


class LessonFailed(Exception):
    """A lesson stopped with an error: one line that names the lesson and the error."""


def execute(path: Path, after: list[str] = ()) -> nbformat.NotebookNode:
    """Run the lesson top to bottom as a kernel in notebooks/ would, then the code cells `after`, if
    any."""
    notebook = nbformat.read(path, as_version=4)
    notebook.cells += [nbformat.v4.new_code_cell(source) for source in after]
    try:
        NotebookClient(notebook, timeout=900, kernel_name="python3",
                       # the kernel's own log at ERROR: no "running over TCP" warning per lesson
                       extra_arguments=["--IPKernelApp.log_level=ERROR"],
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    except CellExecutionError as error:
        raise LessonFailed(f"{path.name} stopped with {error.ename}: {error.evalue}; open it in "
                           "Jupyter "
                           "(.venv/bin/jupyter lab notebooks/) to see the cell") from None
    return notebook


def _link(target: str, out: Path) -> str:
    """A link as a lesson writes it (relative to notebooks/), as the page in `out` must write it."""
    if re.match(r"[a-z]+:|#", target):  # https:, mailto:, or an anchor on the same page
        return target
    path, _, anchor = target.partition("#")
    resolved = (NOTEBOOKS / path).resolve()
    if resolved.suffix == ".ipynb" and resolved.parent == NOTEBOOKS:
        new = f"{resolved.stem}.html"  # another lesson: its page, beside this one
    else:
        new = Path(os.path.relpath(resolved, out.resolve())).as_posix()
    return new + (f"#{anchor}" if anchor else "")


def render(notebook: nbformat.NotebookNode, name: str, out: Path, neighbours: tuple) -> list[Path]:
    """Write `name`.html and its plots into `out`; return the files written."""
    exporter = HTMLExporter(template_name="basic", exclude_input_prompt=True,
                            exclude_output_prompt=True)
    exporter.register_preprocessor("nbconvert.preprocessors.ExtractOutputPreprocessor",
                                   enabled=True)
    body, resources = exporter.from_notebook_node(notebook, resources={"unique_key": name})
    written = []
    for file_name, data in resources.get("outputs", {}).items():  # the plots, as PNG files
        written.append(out / file_name)
        written[-1].write_bytes(data)
    body = re.sub(r'href="([^"]+)"',
                  lambda m: f'href="{html.escape(_link(html.unescape(m.group(1)), out))}"', body)
    previous, following = neighbours
    links = ['<a href="index.html">all steps and lessons</a>']
    if previous:
        links.append(f'<a href="{previous[0]}.html">← {html.escape(previous[1])}</a>')
    if following:
        links.append(f'<a href="{following[0]}.html">{html.escape(following[1])} →</a>')
    nav = f'<nav>{" · ".join(links)}</nav>'
    colours = HtmlFormatter(style="default").get_style_defs(".highlight")
    page = (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{html.escape(title(notebook))}</title>\n<style>{STYLE}{colours}\n</style>\n</head>\n"
            f"<body>\n{nav}\n{body}\n{nav}\n</body>\n</html>\n")
    written.append(out / f"{name}.html")
    written[-1].write_text(page, encoding="utf-8")
    return written


def build(out: Path,
          executed: dict[str, nbformat.NotebookNode] | None = None) -> list[tuple[str, str]]:
    """Run every lesson (or take `executed`, name -> run notebook) and write its page into `out`.

    Returns (name, title) for each lesson, in order, for the index.
    """
    runs, notebooks, paths = executed or {}, {}, lessons()
    for number, path in enumerate(paths, 1):  # all run, then written
        if path.stem in runs:
            notebooks[path.stem] = runs[path.stem]
            continue
        print(f"lesson {number} of {len(paths)}: {path.name} ...", end=" ", flush=True)
        start = time.perf_counter()
        notebooks[path.stem] = execute(path)
        print(f"{time.perf_counter() - start:.0f} s", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    listed = [(name, title(notebook)) for name, notebook in notebooks.items()]
    for index, (name, notebook) in enumerate(notebooks.items()):
        neighbours = (listed[index - 1] if index else None,
                      listed[index + 1] if index + 1 < len(listed) else None)
        render(notebook, name, out, neighbours)
    return listed
