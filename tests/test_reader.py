"""The side-by-side reader: pages built from the code, checked in a real browser.

The browser is Debian's headless Chromium (`.ci/run` installs it). Without it these tests
skip with a reason locally and fail on CI (`CI=true`), so a CI run cannot pass by skipping.
"""

import html
import re
import shutil
from html.parser import HTMLParser

import pytest

import tools.ladder
import tools.reader
from tools.ladder import PACKAGES, REPO, STEPS, code_lines, twin_path
from tools.reader import PAIRS, build, page_name, rendered_dom, screenshot

PAGES = ["index"] + [page_name(step.example, pair)[: -len(".html")] for step in STEPS
                     for pair in PAIRS]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    folder = tmp_path_factory.mktemp("site")
    build(folder)
    return folder


class Cells(HTMLParser):
    """Collects the text of every code cell, by column and line number, and the section each sits
    in."""

    def __init__(self) -> None:
        super().__init__()
        self.columns: dict[str, dict[int, str]] = {package: {} for package in PACKAGES}
        self.section_of: dict[tuple[str, int], str] = {}
        self.section = ""
        self.current: tuple[str, int] | None = None
        self.in_heading = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "h2" and "id" in attrs:
            self.section = attrs["id"]
        if tag == "td" and "data-line" in attrs:
            package = next(p for p in PACKAGES if p in attrs["class"].split())
            self.current = (package, int(attrs["data-line"]))
            self.columns[package][self.current[1]] = ""
            self.section_of[self.current] = self.section

    def handle_endtag(self, tag):
        if tag == "td":
            self.current = None

    def handle_data(self, data):
        if self.current:
            package, number = self.current
            self.columns[package][number] += data


def cells(dom: str) -> Cells:
    parser = Cells()
    parser.feed(dom)
    return parser


@pytest.mark.slow
@pytest.mark.parametrize("pair", PAIRS, ids="-".join)
@pytest.mark.parametrize("step", STEPS, ids=lambda step: step.example)
def test_pair_page_shows_both_files_whole_in_the_browser(step, pair, browser, site):
    """Chromium's rendered DOM holds both columns, and in them every line of each twin, whole."""
    found = cells(rendered_dom(site / page_name(step.example, pair)))
    assert all(found.columns[package] == {} for package in PACKAGES if package not in pair)
    for package in pair:
        lines = (REPO / twin_path(package, step.example)).read_text().splitlines()
        assert sorted(found.columns[package]) == list(range(1, len(lines) + 1))  # every line, once
        assert found.columns[package] == dict(enumerate(lines, 1))  # each one whole, as in the file


# Lines of each twin that must stand in the loop's section, by step: step 1 trains in a function
# of its own, step 4 in main() itself (from its phase comment to the loop's last line).
IN_THE_LOOP = {
    "mnist_feedforward": {"plain_pytorch": ["def train_one_epoch", "loss.backward()"],
                          "fabric_version": ["def train_one_epoch", "fabric.backward(loss)"],
                          "lightning_version": ["def training_step"]},
    "tiny_gpt": {"plain_pytorch": ["# The loop, by steps", "for step, (x, y) in enumerate(",
                                   "loss.backward()", "stop_if_diverged(loss", "if args.dry_run:"],
                 "fabric_version": ["# The loop, by steps", "for step, (x, y) in enumerate(",
                                    "fabric.backward(loss)", "stop_if_diverged(loss"],
                 "lightning_version": ["def training_step", "stop_if_diverged(outputs"]},
}
LINE_UP_PAGES = [("mnist_feedforward", ("plain_pytorch", "lightning_version"))] + [
    ("tiny_gpt", pair) for pair in PAIRS]


@pytest.mark.slow
@pytest.mark.parametrize("example, pair", LINE_UP_PAGES,
                         ids=[f"{example}-{'-'.join(pair)}" for example, pair in LINE_UP_PAGES])
def test_sections_line_up_the_loop_with_training_step(example, pair, browser, site):
    """The hand-written loop and training_step, evaluate and validation_step, stand in the same
    sections; in step 4, whose plain and Fabric loops are written inside main(), too."""
    found = cells(rendered_dom(site / page_name(example, pair)))

    def section(package: str, text: str) -> str:
        return next(found.section_of[(package, n)] for n, line in found.columns[package].items()
                    if text in line)

    for package in pair:
        assert [section(package, text) for text in IN_THE_LOOP[example][package]] == [
            "loop"] * len(IN_THE_LOOP[example][package]), package
        evaluation = "def validation_step" if package == "lightning_version" else "def evaluate"
        assert section(package, evaluation) == "evaluation"
        assert section(package, "def main") == "main"
    if example == "tiny_gpt":  # what stays in main() after its loop: the sampling
        assert {section(package, "# Sampling:") for package in pair} == {"main"}


@pytest.mark.slow
def test_index_lists_the_steps_in_order_with_their_code_lines(browser, site):
    """The index names the steps in ladder order, each twin with its code-line
    count as counted now."""
    dom = rendered_dom(site / "index.html")
    positions = [dom.index(f'href="{step.example}.html"') for step in STEPS]
    assert positions == sorted(positions)
    for step in STEPS:
        for package in PACKAGES:
            path = twin_path(package, step.example)
            assert f"<code>{path}</code> {code_lines(path)}" in dom


@pytest.mark.slow
@pytest.mark.parametrize("name", ["index"] + [step.example for step in STEPS])
def test_page_is_not_blank_on_screen(name, browser, site, tmp_path):
    """A screenshot of the index and of each step's first page shows text in colour, not an empty
    window.

    (The other two pages of a step come from the same template; their whole text is checked in
    the DOM above.)"""
    from matplotlib.image import imread

    png = tmp_path / f"{name}.png"
    screenshot(site / f"{name}.html", png)
    pixels = imread(png)[..., :3]
    ink = (pixels < 0.9).any(axis=-1).mean()  # share of pixels that are not near-white
    colours = len({tuple(p) for p in pixels.reshape(-1, 3)[::97].round(2).tolist()})
    assert ink > 0.02 and colours > 20


def test_pages_are_the_same_bytes_when_built_twice(tmp_path):
    """Built twice from the same code, every page is byte for byte the same: nothing depends on
    the clock."""
    first, second = build(tmp_path / "one"), build(tmp_path / "two")
    # 1 + 3 x 3
    assert [p.name for p in first] == [p.name for p in second] == [f"{name}.html" for name in PAGES]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(first, second))


def test_a_line_changed_in_a_twin_shows_up_on_its_page(tmp_path, monkeypatch):
    """Change one line of a twin and rebuild: the two pages that show it change, no other page does.
    """
    copy = tmp_path / "repo"
    for package in PACKAGES:
        shutil.copytree(REPO / package, copy / package)
    before = build(tmp_path / "before")
    monkeypatch.setattr(tools.ladder, "REPO", copy)
    monkeypatch.setattr(tools.reader, "REPO", copy)
    twin_file = copy / "plain_pytorch" / "cnn_classifier.py"
    twin_file.write_text(twin_file.read_text().replace("optimizer.zero_grad()",
                                                       "optimizer.zero_grad(set_to_none=True)"))
    after = build(tmp_path / "after")
    changed = [b.name for a, b in zip(before, after) if a.read_bytes() != b.read_bytes()]
    assert changed == ["cnn_classifier.html", "cnn_classifier-plain-fabric.html"]
    for name in changed:
        # text, no markup
        shown = html.unescape(re.sub(r"<[^>]+>", "", (tmp_path / "after" / name).read_text()))
        assert "optimizer.zero_grad(set_to_none=True)" in shown


def test_unwritable_output_folder_is_one_line_and_status_2(tmp_path):
    """`--out` below a regular file: one line on stderr, exit status 2, no traceback."""
    import subprocess
    import sys

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    done = subprocess.run([sys.executable, "-m", "tools.reader", "--out", str(blocker / "site")],
                          cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "--out" not in done.stderr.split(":")[0]


def test_every_link_inside_the_site_resolves_and_each_step_links_its_three_pages(site):
    """Each href of every page names a page that was built (or a section of one); each page links
    its step's other two."""
    built = {path.name for path in site.iterdir()}
    for page in site.iterdir():
        text = page.read_text()
        for target in re.findall(r'href="([^"]+)"', text):
            assert target.split("#")[0] in built, (page.name, target)
    for step in STEPS:
        names = {page_name(step.example, pair) for pair in PAIRS}
        index = (site / "index.html").read_text()
        assert all(f'href="{name}"' in index for name in names)
        for name in names:
            assert {f'href="{other}"' in (site / name).read_text()
                    for other in names - {name}} == {True}


@pytest.mark.slow
def test_the_first_screen_shows_code_the_docstrings_folded(browser, site):
    """The files' docstrings sit in a closed <details>, so the first section on screen is code
    (the imports)."""
    dom = rendered_dom(site / "mnist_feedforward.html")
    folded = re.search(r'<details id="about">(.*?)</details>', dom, re.S)
    assert folded and "open" not in dom[folded.start() : folded.start() + 30]
    # the docstrings, inside
    assert "Left out on purpose" in html.unescape(re.sub(r"<[^>]+>", "", folded.group(1)))
    assert dom.index('<h2 id="imports">') > folded.end()


def test_only_code_that_differs_is_tinted(tmp_path, monkeypatch):
    """A comment changed in a twin tints nothing new; a code change tints its row; comment-only
    rows never tint."""
    from tools.reader import pair_page

    def tinted(page: str) -> int:
        return int(re.search(r"\((\d+) of \d+ rows", page).group(1))

    copy = tmp_path / "repo"
    for package in PACKAGES:
        shutil.copytree(REPO / package, copy / package)
    monkeypatch.setattr(tools.ladder, "REPO", copy)
    monkeypatch.setattr(tools.reader, "REPO", copy)
    step, pair = STEPS[0], ("plain_pytorch", "fabric_version")
    before = pair_page(step, pair)
    twin_file = copy / "fabric_version" / "mnist_feedforward.py"
    original = twin_file.read_text()
    twin_file.write_text(original.replace("# (B, 10)", "# (B, 10): ten logits a row"))
    # a comment is no difference in substance
    assert tinted(pair_page(step, pair)) == tinted(before)
    twin_file.write_text(original.replace("optimizer.zero_grad()",
                                          "optimizer.zero_grad(set_to_none=False)"))
    assert tinted(pair_page(step, pair)) == tinted(before) + 1
    checked = 0
    for tint, row in re.findall(r'<tr class="(\w+)">(.*?)</tr>', before):
        texts = [html.unescape(re.sub(r"<[^>]+>", "", code)).strip()
                 for code in re.findall(r'<td class="code[^"]*"[^>]*>(.*?)</td>', row)]
        # blank, comment or gap on both sides
        if all(text == "" or text.startswith("#") for text in texts):
            checked += 1
            assert tint == "same", row
    assert checked > 5
