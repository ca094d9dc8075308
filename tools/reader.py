"""The side-by-side reader: two of a step's three twins on one static web page, from the code.

    python -m tools.reader --out site                               # site/index.html + the pages
    python -m tools.reader --out site --screenshot docs/reader.png  # and a picture of step 1's page
    python -m tools.reader --out site --lessons                     # and every lesson, run, as a
    page

Each step has three twins (plain PyTorch, Lightning Fabric, the Lightning Trainer) and three
pages, one for each two of them: EXAMPLE.html (plain ⟷ Lightning), EXAMPLE-plain-fabric.html
and EXAMPLE-fabric-lightning.html, linked from each other. A page puts the two files side by
side, section by section (what the file is, imports, data, the model, optimisation, the loop
or `training_step`, evaluation, `main()`). A Lightning class is split by method, so
`training_step` stands beside the hand-written loop and `configure_optimizers` beside
nothing: the plain twin does that in `main()`. The files' docstrings come first, folded, so
the first screen shows code. Within a section difflib lines the two files up; a row is
tinted only when its code differs (comments, blank lines and docstrings never tint it), and
the comments that say what Lightning, Fabric or the Trainer takes over are shown as notes
beside the line they explain. Lines are never cut: a narrow window wraps them.

The pages are plain HTML and CSS (pygments' colours): no server, no network, no JavaScript.
Built twice from the same code they are the same bytes; tests/test_reader.py opens them in
headless Chromium. The index lists the steps in ladder order with each file's code lines,
counted when the pages are built, and links each step's three pages; with --lessons, then the
lessons, run and written as pages by tools/lesson_pages.py.
"""

import ast
import difflib
import html
import re
import shutil
import subprocess
import sys
import tempfile
from itertools import zip_longest
from pathlib import Path

from pygments import lex
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer
from pygments.token import STANDARD_TYPES, Comment

from shared import process_setup, run_end
from shared.one_line_parser import OneLineParser
from shared.registry import PACKAGES, TWINS
from tools.ladder import REPO, STEPS, Step, code_line_numbers, code_lines, twin_path

SECTIONS = {  # key: heading, in page order
    "about": "What the file is",
    "imports": "Imports",
    "data": "Data",
    "model": "The model",
    "optimisation": "Optimisation",
    "loop": "The loop, or training_step",
    "evaluation": "Evaluation, test and predict",
    "main": "main(): putting it together",
}
FUNCTION_SECTIONS = {"training_loss": "loop", "train_one_epoch": "loop", "training_step": "loop",
                     "on_train_batch_end": "loop",  # the nan check the plain loop makes
                     "evaluate": "evaluation", "predict": "evaluation",
                     "validation_step": "evaluation",
                     "test_step": "evaluation", "predict_step": "evaluation",
                     "loss_and_accuracy": "evaluation",
                     "configure_optimizers": "optimisation", "__init__": "model", "main": "main"}
# a comment naming what the other side does
TAKES_OVER = re.compile(r"Lightning|Trainer|Fabric|fast_dev_run")
COLUMN_TITLES = {twin.package: twin.title for twin in TWINS}  # "plain PyTorch, by hand", ...
SHORT_NAMES = {twin.package: twin.label for twin in TWINS}  # "plain", "Fabric", "Lightning"
# The two files of each page, and the page's name: the first pair, the first twin beside the
# last (plain beside Lightning), is EXAMPLE.html itself; then EXAMPLE-plain-fabric.html, ...
_OUTER = (TWINS[0], TWINS[-1])
PAIRS = {(_OUTER[0].package, _OUTER[1].package): ""} | {
    (a.package, b.package): f"-{a.folder}-{b.folder}"
    for i, a in enumerate(TWINS) for b in TWINS[i + 1:] if (a, b) != _OUTER}


def page_name(example: str, pair: tuple[str, str]) -> str:
    return f"{example}{PAIRS[pair]}.html"


def section_of(node: ast.stmt, first: bool) -> str:
    """Which section a top-level statement (or a method) belongs to."""
    if first and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
        return "about"
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.Assign)):
        return "imports"
    if isinstance(node, ast.FunctionDef):
        return FUNCTION_SECTIONS.get(node.name,
                                     "data" if node.name.endswith("dataloader")
                                     or node.name == "setup"
                                     else "main")
    if isinstance(node,
                  ast.ClassDef) and any("DataModule" in ast.unparse(base) for base in node.bases):
        return "data"
    return "main"  # `if __name__ == "__main__":` and anything else


def inline_loop(node: ast.stmt, lines: list[str]) -> range | None:
    """The line numbers of the training loop written inside `main()` itself, if it is there:
    a `for` or `while` of main's that calls `backward`, with the paragraph above it (its
    phase comment and set-up, up to the blank line). Step 4 trains by steps in main();
    steps 1-3 call a `train_one_epoch` function instead."""
    for statement in getattr(node, "body", []):
        if isinstance(statement, (ast.For, ast.While)) and any(
                isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                and call.func.attr == "backward" for call in ast.walk(statement)):
            start = statement.lineno
            while start - 1 > node.lineno and lines[start - 2].strip():
                start -= 1
            return range(start, statement.end_lineno + 1)
    return None


def sections(path: str) -> dict[str, list[int]]:
    """The line numbers of `path`, grouped by section, in file order within each section.

    Each statement takes the lines above it that no earlier statement took (blank lines,
    comments, decorators). A LightningModule is split by method; its `class` line and
    docstring go with the model. A training loop written inside `main()` (step 4's) goes to
    the loop's section, beside `training_step`; the rest of `main()` stays in its own.
    """
    source = (REPO / path).read_text()
    groups: dict[str, list[int]] = {key: [] for key in SECTIONS}
    taken = 0
    for index, node in enumerate(ast.parse(source).body):
        is_module_class = isinstance(node, ast.ClassDef) and section_of(node, False) == "main"
        if not is_module_class:
            section = section_of(node, index == 0)
            loop = inline_loop(node, source.splitlines()) if section == "main" else None
            for number in range(taken + 1, node.end_lineno + 1):
                groups["loop" if loop and number in loop else section].append(number)
            taken = node.end_lineno
            continue
        methods = [item for item in node.body if isinstance(item, ast.FunctionDef)]
        header_end = (methods[0].lineno - 1 - len(methods[0].decorator_list) if methods
                      else node.end_lineno)
        groups["model"] += range(taken + 1, header_end + 1)
        taken = header_end
        for method in methods:
            groups[section_of(method, False)] += range(taken + 1, method.end_lineno + 1)
            taken = method.end_lineno
        taken = node.end_lineno
    groups["main"] += range(taken + 1, len(source.splitlines()) + 1)  # trailing lines, if any
    return groups


def highlighted_lines(source: str) -> list[str]:
    """Each line of `source` as HTML, coloured by pygments' token classes; no span crosses a
    line."""
    lines: list[list[str]] = [[]]
    for token_type, value in lex(source, PythonLexer(stripnl=False, ensurenl=False)):
        kind = token_type
        while kind not in STANDARD_TYPES:
            kind = kind.parent
        css = STANDARD_TYPES[kind]
        note = token_type in Comment and TAKES_OVER.search(value)
        for number, part in enumerate(value.split("\n")):
            if number:
                lines.append([])
            if part:
                classes = " ".join(filter(None, (css, "note" if note else "")))
                lines[-1].append(f'<span class="{classes}">{html.escape(part)}</span>' if classes
                                 else html.escape(part))
    return ["".join(parts) for parts in lines][: len(source.splitlines())]


def code_key(line: str) -> str:
    """What a line does, for lining the twins up: its code without the comment and spacing."""
    return line.split("  #")[0].strip()


def section_rows(left: list[int], right: list[int], left_lines: list[str], right_lines: list[str],
                 left_code: set[int], right_code: set[int]):
    """(left line number or None, right line number or None, differs in substance?) for one section.

    A row differs in substance when it holds a code line (`left_code`, `right_code`: the line
    numbers that are code, not blank, comment or docstring) and the code on its two sides is not
    the same. Within a block that difflib finds replaced, each line is paired with the most
    similar line still ahead on the other side, as `diff` pairs a changed line with its old self.
    """
    def key(lines: list[str], number: int | None, code: set[int]) -> str:
        return code_key(lines[number - 1]) if number in code else ""

    left_keys = [code_key(left_lines[n - 1]) for n in left]
    right_keys = [code_key(right_lines[n - 1]) for n in right]
    matcher = difflib.SequenceMatcher(None, left_keys, right_keys, autojunk=False)
    for _tag, i1, i2, j1, j2 in matcher.get_opcodes():
        for a, b in paired(left[i1:i2], right[j1:j2], left_keys[i1:i2], right_keys[j1:j2]):
            yield a, b, key(left_lines, a, left_code) != key(right_lines, b, right_code)


def paired(left: list[int], right: list[int], left_keys: list[str], right_keys: list[str]):
    """Rows for one difflib block: the most similar two lines (ratio above 0.6) share a row, then
    the lines above them and the lines below them are paired the same way; lines with no
    similar partner stand side by side as they come, as `diff` pairs a changed line with its old
    self."""
    best, where = 0.6, None
    for i, a in enumerate(left_keys):
        for j, b in enumerate(right_keys):
            matcher = difflib.SequenceMatcher(None, a, b)
            if a and b and matcher.real_quick_ratio() > best and matcher.quick_ratio() > best:
                if matcher.ratio() > best:
                    best, where = matcher.ratio(), (i, j)
    if where is None:
        yield from zip_longest(left, right)
        return
    i, j = where
    yield from paired(left[:i], right[:j], left_keys[:i], right_keys[:j])
    yield left[i], right[j]
    yield from paired(left[i + 1:], right[j + 1:], left_keys[i + 1:], right_keys[j + 1:])


def cell(package: str, number: int | None, lines: list[str], raw: list[str], side: str) -> str:
    if number is None:
        return f'<td class="n"></td><td class="code {package} {side} gap"></td>'
    note = " takeover" if ' note"' in lines[number - 1] else ""  # the line holds a highlighted note
    return (f'<td class="n">{number}</td><td class="code {package} {side}{note}" '
            f'data-line="{number}">'
            f"{lines[number - 1]}</td>") if raw[number - 1] else (
            f'<td class="n">{number}</td><td class="code {package} {side} blank" '
            f'data-line="{number}"></td>')


def pair_page(step: Step, pair: tuple[str, str] = ("plain_pytorch", "lightning_version")) -> str:
    """The HTML page of two of a step's twins, `pair` = (left package, right package)."""
    left_package, right_package = pair
    paths = {package: twin_path(package, step.example) for package in PACKAGES}
    raw = {package: (REPO / paths[package]).read_text().splitlines() for package in pair}
    coloured = {package: highlighted_lines((REPO / paths[package]).read_text()) for package in pair}
    code = {package: code_line_numbers(paths[package]) for package in pair}
    groups = {package: sections(paths[package]) for package in pair}
    body, tinted, rows_shown = [], 0, 0
    for key, heading in SECTIONS.items():
        left, right = groups[left_package][key], groups[right_package][key]
        if not left and not right:
            continue
        rows = []
        for a, b, differs in section_rows(left, right, raw[left_package], raw[right_package],
                                          code[left_package], code[right_package]):
            tinted, rows_shown = tinted + differs, rows_shown + 1
            rows.append(f'<tr class="{"differs" if differs else "same"}">'
                        + cell(left_package, a, coloured[left_package], raw[left_package], "left")
                        + cell(right_package, b, coloured[right_package], raw[right_package],
                               "right") + "</tr>")
        for package, lines in ((left_package, left), (right_package, right)):
            if not lines:
                where = "in main()" if key != "model" else "from shared/models.py, built in main()"
                rows.append(f'<tr class="absent"><td colspan="4">{COLUMN_TITLES[package]}: nothing '
                            'here; '
                            f"this twin does it {where}</td></tr>")
        table = '<table class="pair">\n' + "\n".join(rows) + "\n</table>"
        if key == "about":  # the docstrings, folded: the first screen shows code
            first_lines = " ⟷ ".join(html.escape(raw[p][0].strip('"')) for p in pair)
            body.append(f'<details id="{key}"><summary>{heading}: the two docstrings (click to '
                        'unfold)<br>'
                        f'<span class="first">{first_lines}</span></summary>\n{table}\n</details>')
        else:
            body.append(f'<h2 id="{key}">{heading}</h2>\n{table}')
    steps = {s.number: s for s in STEPS}
    links = ['<a href="index.html">all steps</a>']
    if step.number - 1 in steps:
        links.append(f'<a href="{steps[step.number - 1].example}.html">← step '
                     f'{step.number - 1}</a>')
    if step.number + 1 in steps:
        links.append(f'<a href="{steps[step.number + 1].example}.html">step {step.number + 1} '
                     '→</a>')
    choices = [f"<b>{SHORT_NAMES[a]} ⟷ {SHORT_NAMES[b]}</b>" if (a, b) == pair else
               f'<a href="{page_name(step.example, (a, b))}">{SHORT_NAMES[a]} ⟷ '
               f'{SHORT_NAMES[b]}</a>'
               for a, b in PAIRS]
    counts = " · ".join(f"{COLUMN_TITLES[p]}: <code>{paths[p]}</code> ({code_lines(paths[p])} code "
                        "lines)"
                        for p in PACKAGES)
    head = (f"<h1>Step {step.number}: <code>{step.example}</code>, {html.escape(step.title)}</h1>\n"
            f'<nav>{" · ".join(links)}</nav>\n<p class="teaches">{inline_code(step.teaches)}</p>\n'
            f'<p class="files">The step\'s three twins: {counts}</p>\n'
            f'<nav class="choose">Put side by side: {" · ".join(choices)}</nav>\n'
            '<table class="pair heading"><tr>'
            + "".join(f'<th colspan="2">{COLUMN_TITLES[p]}: <code>{paths[p]}</code></th>'
                      for p in pair)
            + "</tr></table>\n"
            f'<p class="legend"><span class="differs">code differs</span> ({tinted} of '
            f'{rows_shown} rows; '
            'comments, blank lines and docstrings never count) '
            '<span class="note">comment: what Lightning, Fabric or the Trainer takes '
            'over</span></p>')
    title = (f"Step {step.number}: {step.example}, "
             f"{SHORT_NAMES[left_package]} ⟷ {SHORT_NAMES[right_package]}")
    return page(title, head + "\n" + "\n".join(body))


def inline_code(text: str) -> str:
    """Markdown's `code` spans as <code>, the rest escaped."""
    return re.sub(r"`([^`]+)`",
                  lambda m: f"<code>{m.group(1)}</code>", html.escape(text, quote=False))


def index_page(lessons: list[tuple[str, str]] = ()) -> str:
    """The ladder's steps in order, then the lessons (name, title) when their pages were built."""
    items = []
    for step in STEPS:
        counts = ", ".join(f"<code>{twin_path(p, step.example)}</code> "
                           f"{code_lines(twin_path(p, step.example))}"
                           for p in PACKAGES)
        pages = " · ".join(f'<a href="{page_name(step.example, (a, b))}">{SHORT_NAMES[a]} ⟷ '
                           f'{SHORT_NAMES[b]}</a>'
                           for a, b in PAIRS)
        items.append(f'<li><h2><a href="{step.example}.html">Step {step.number}: '
                     f'<code>{step.example}</code></a>, '
                     f"{html.escape(step.title)}</h2>\n<p>{inline_code(step.teaches)}</p>\n"
                     f"<p>With Fabric: {inline_code(step.fabric)}</p>\n"
                     '<p class="counts">code lines (no blanks, comments or docstrings): '
                     f'{counts}</p>\n'
                     f'<p class="pages">Side by side: {pages}</p></li>')
    intro = ("<h1>PyTorch ⟷ PyTorch Lightning, side by side</h1>\n<p>Each example is written three "
             "times: "
             "a hand-written loop, the same loop with Lightning Fabric, and a LightningModule with "
             "the "
             "Trainer; the three give the same losses, bit for bit. Read the steps in order: each "
             "teaches "
             "its own part of Lightning. Any two twins of a step can stand side by side.</p>")
    lesson_list = ""
    if lessons:
        lesson_list = ("\n<h1>Lessons</h1>\n<p>The notebooks in <code>notebooks/</code>, run from "
                       "top to bottom, "
                       "with what each cell printed and drew.</p>\n<ol>\n"
                       + "\n".join(f'<li><a href="{name}.html">{html.escape(title)}</a></li>'
                                   for name, title in lessons)
                       + "\n</ol>")
    return page("PyTorch ⟷ Lightning, side by side",
                intro + '\n<ol class="steps">\n' + "\n".join(items) + "\n</ol>" + lesson_list)


STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
code, td.code { font-family: ui-monospace, "DejaVu Sans Mono", monospace; }
table.pair { border-collapse: collapse; width: 100%; table-layout: fixed; }
table.pair td.n { width: 3em; text-align: right; color: #999; padding-right: 0.5em;
  vertical-align: top; font-size: 12px; font-family: monospace; }
table.pair td.code { white-space: pre-wrap; overflow-wrap: anywhere; font-size: 12.5px;
  padding: 0 0.5em; vertical-align: top; }
table.pair td.right { border-left: 1px solid #ccc; }
details { margin: 1em 0; }
details summary { cursor: pointer; color: #555; }
details summary span.first { font-style: italic; }
nav.choose b { background: #eee; padding: 0 0.3em; }
table.pair th { text-align: left; padding: 0.4em; background: #f0f0f0; }
tr.differs td.code { background: #fff6d6; }
tr.differs td.gap { background: #f4f4f4; }
td.takeover { box-shadow: inset 4px 0 #e8a400; }
span.note { background: #ffe58a; font-style: normal; }
tr.absent td { color: #777; font-style: italic; padding: 0.3em 0.5em; }
h2 { font-size: 1.05em; margin: 1.4em 0 0.3em; border-bottom: 1px solid #ddd; }
p.legend span { padding: 0 0.4em; margin-right: 1em; }
p.legend span.differs { background: #fff6d6; }
ol.steps li { margin-bottom: 1em; }
"""


def page(title: str, body: str) -> str:
    colours = HtmlFormatter(style="default").get_style_defs("td.code")
    return ('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta '
            f'charset="utf-8">\n<title>{html.escape(title)}</title>\n'
            f"<style>{STYLE}{colours}\n</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")


# The file that marks a folder as the reader's own: --out is refused unless it is empty, or holds
# this file (the reader wrote it there before), so the reader never writes over anyone's files.
STAMP = ".written-by-tools-reader"


def why_not_ours(out: Path) -> str | None:
    """Why the reader may not write into `out`, or None: it may when `out` does not exist, is
    empty, or holds the reader's stamp."""
    if not out.exists():
        return None
    if not out.is_dir():
        return f"{out} is a file, not a folder"
    if (out / STAMP).is_file() or not any(out.iterdir()):
        return None
    return (f"{out} already holds files the reader did not write; pick an empty or new folder "
            f"(the reader writes only where it finds none, or its own {STAMP})")


def build(out: Path, lessons: list[tuple[str, str]] = ()) -> list[Path]:
    """Write index.html (listing `lessons`, whose pages are built) and, for each step, one page per
    two of its twins into `out`, with the stamp that marks it as the reader's; return the files
    written."""
    out.mkdir(parents=True, exist_ok=True)
    (out / STAMP).write_text("python -m tools.reader writes this folder; it may rewrite it\n")
    written = [out / "index.html"]
    written[0].write_text(index_page(lessons), encoding="utf-8")
    for step in STEPS:
        for pair in PAIRS:
            written.append(out / page_name(step.example, pair))
            written[-1].write_text(pair_page(step, pair), encoding="utf-8")
    return written


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]


def chromium() -> str | None:
    """The headless browser (Debian's `chromium`), or None when it is not installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def run_chromium(args: list[str], page_file: Path) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:  # a new, empty profile each time
        command = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args,
                   page_file.resolve().as_uri()]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)


def screenshot(page_file: Path, png: Path, width: int = 1500, height: int = 2500,
               scale: float = 0.6) -> None:
    """Render `page_file` in headless Chromium and save its top as `png`.

    A tall window at 0.6 scale: on step 1's page that reaches the loop and its
    `training_step`, in a picture of 900 x 1500 pixels.
    """
    png.parent.mkdir(parents=True, exist_ok=True)
    run_chromium([f"--screenshot={png.resolve()}", f"--window-size={width},{height}",
                  f"--force-device-scale-factor={scale}"], page_file)


def rendered_dom(page_file: Path) -> str:
    """The page's DOM after Chromium rendered it (`--dump-dom`)."""
    return run_chromium(["--dump-dom"], page_file).stdout


def main() -> None:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for index.html and the pair pages")
    parser.add_argument("--screenshot", metavar="PNG",
                        help="also save a picture of step 1's page (needs chromium)")
    parser.add_argument("--lessons", action="store_true",
                        help="also run every lesson notebook into a page (minutes)")
    with run_end.in_one_line(), process_setup.in_place():
        args = parser.parse_args()
    try:
        refusal = why_not_ours(Path(args.out))
    except OSError as error:  # a folder it may not list
        refusal = f"cannot read {args.out}: {error.strerror or error}"
    if refusal:
        print(f"error: argument --out: {refusal}", file=sys.stderr)
        sys.exit(2)
    try:
        lessons = []
        if args.lessons:
            from tools import lesson_pages  # nbclient and a kernel: only when asked

            try:
                lessons = lesson_pages.build(Path(args.out))
            except lesson_pages.LessonFailed as error:
                print(f"error: {error}", file=sys.stderr)
                sys.exit(2)
        written = build(Path(args.out), lessons)
    except OSError as error:
        print(f"error: cannot write into {args.out}: {error.strerror or error}; pick a folder you "
              "can write to",
              file=sys.stderr)
        sys.exit(2)
    print("\n".join(f"wrote {path}" for path in written))
    print("\n".join(f"wrote {Path(args.out) / name}.html ({title})" for name, title in lessons))
    if args.screenshot:
        if chromium() is None:
            print("error: --screenshot needs Chromium; install it (apt-get install chromium)",
                  file=sys.stderr)
            sys.exit(2)
        screenshot(written[1], Path(args.screenshot))
        print(f"wrote {args.screenshot}")


if __name__ == "__main__":
    main()
