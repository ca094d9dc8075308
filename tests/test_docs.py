"""README is a map and docs/ holds the depth; neither names a command, module or flag that does
not exist."""

import contextlib
import functools
import importlib.util
import io
import re
import sys

import pytest

from shared.flags import build_parser
from shared.registry import EXAMPLE_NAMES, PACKAGES
from tests.conftest import REPO

PAGES = [REPO / "README.md", REPO / "data" / "README.md", *sorted((REPO / "docs").glob("*.md"))]
TWINS = {f"{package}.{example}" for package in PACKAGES for example in EXAMPLE_NAMES}
TWIN_FLAGS = {flag for example in EXAMPLE_NAMES
              for flag in build_parser(example)._option_string_actions}
# they take --update alone
TABLE_WRITERS = {"tools.ladder", "tools.one_liners", "tools.lightning_1x"}
# Flags of other programs that the pages use: torchrun, pip, pytest, tensorboard, jupyter.
OTHER_PROGRAMS = {"--standalone", "--nproc-per-node", "--nnodes", "--rdzv-backend",
                  "--rdzv-endpoint", "--node-rank", "--max-restarts",  # torchrun's
                  "--nodes", "--ntasks-per-node", "--ntasks",  # SLURM's srun
                  "--index-url", "--logdir", "--to", "--execute", "--output-dir", "--help",
                  "--full"}  # pytest's --full is tests/conftest.py's
# and of the broken pairs that docs/check-your-port.md runs
PAIR_FLAGS = {flag for path in (REPO / "tests" / "port_pairs").glob("*.py")
              for flag in re.findall(r'add_argument\("(--[\w-]+)"', path.read_text())}


def commands() -> list[tuple[str, str, list[str]]]:
    """Every `python -m MODULE ...` on the pages: (page, module, the flags after it on that line).
    """
    found = []
    for page in PAGES:
        for line in page.read_text().splitlines():
            for match in re.finditer(r"python -m ([\w.]+)([^`|#]*)", line):
                # a quoted command is another program's
                words = re.sub(r'"[^"]*"', "", match.group(2))
                found.append((page.name, match.group(1), re.findall(r"(--[\w-]+)", words)))
    return found


@functools.lru_cache
def tool_flags(module: str) -> set[str]:
    """The flags a tool's --help lists."""
    if module in TABLE_WRITERS:
        return {"--update"}
    main = getattr(importlib.import_module(module), "main", None)
    if main is None:  # a module without a command line: `python -m` it prints nothing
        return set()
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
        patch.setattr(sys, "argv", [module, "--help"])  # in this process: no start-up to pay
        with pytest.raises(SystemExit) as exit_info:
            main()
    assert exit_info.value.code == 0, module
    return set(re.findall(r"(--[\w-]+)", printed.getvalue()))


def test_readme_is_a_map_of_at_most_250_lines_that_links_every_doc():
    """README stays short, and every page of docs/ is reachable from it."""
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    assert all(f"docs/{page.name}" in readme for page in (REPO / "docs").glob("*.md"))


def test_every_module_the_pages_run_exists():
    """Each `python -m X` on README and docs/ names a module that imports here (ours, or an
    installed tool)."""
    missing = sorted({(page, module) for page, module, _ in commands()
                      if importlib.util.find_spec(module) is None})
    assert missing == []
    assert len(commands()) > 20  # the scan finds the commands at all


def test_every_flag_the_pages_give_a_command_exists():
    """Each flag after `python -m X` is one that X takes (the main job passes the twins' flags on).
    """
    ours = {module for _, module, _ in commands() if module.startswith("tools.")}
    known = {module: tool_flags(module) for module in ours}
    known["tools.compare"] |= TWIN_FLAGS
    wrong = []
    for page, module, flags in commands():
        if module in TWINS:
            allowed = set(build_parser(module.split(".")[1])._option_string_actions)
        elif module in known:
            allowed = known[module]
        else:
            continue  # another program's flags (pytest, cProfile)
        wrong += [(page, module, flag) for flag in flags if flag not in allowed]
    assert wrong == []


def test_every_flag_the_pages_name_exists_somewhere():
    """A `--flag` anywhere on the pages (tables, prose) is a twin's, a tool's, or one of the few
    other programs'."""
    tools = {f"tools.{path.stem}" for path in (REPO / "tools").glob("*.py")
             if path.stem not in ("__init__", "plots")}
    everything = TWIN_FLAGS | OTHER_PROGRAMS | PAIR_FLAGS | {flag for module in tools
                                                             for flag in tool_flags(module)}
    named = {(page.name, flag) for page in PAGES
             for flag in re.findall(r"(?<![\w-])(--[a-z][\w-]*)", page.read_text())}
    assert sorted((page, flag) for page, flag in named if flag not in everything) == []


@pytest.mark.parametrize("suffix", ["*.py", "*.md", "*.ipynb", "*.toml", "run"])
def test_nothing_names_the_folders_of_the_machines_it_was_written_on(suffix):
    """A stranger's clone has nothing beside it: no file names a folder outside the repository."""
    files = [path for path in REPO.rglob(suffix) if ".venv" not in path.parts
             and "site-packages" not in path.parts]
    # spelled out in pieces, so that this file does not name it either
    outside = "/".join(["..", "shared"])
    assert [str(path) for path in files if outside in path.read_text()] == []
