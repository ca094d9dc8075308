"""shared/registry.py lists every example and every twin, and nothing else: the files agree."""

import ast
from pathlib import Path

from shared.flags import DEFAULTS
from shared.registry import EXAMPLE_NAMES, EXAMPLES, PACKAGES, TWINS, twin_file
from tests.conftest import REPO
from tools import ladder, stress

NOT_TWINS = {".venv", ".git", "tests", "notebooks", "docs", "data", "tools", "shared", "by_hand"}


def twin_files_on_disk(root: Path = REPO) -> set[str]:
    """Every file under `root` that is written as a twin: a module that sets a top-level
    `EXAMPLE = "..."` and defines `main`, as each twin does."""
    found = set()
    for path in root.glob("*/*.py"):
        if path.parts[-2] in NOT_TWINS or path.parts[-2].startswith("."):
            continue
        tree = ast.parse(path.read_text())
        names = {target.id for node in tree.body if isinstance(node, ast.Assign)
                 for target in node.targets if isinstance(target, ast.Name)}
        functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
        if "EXAMPLE" in names and "main" in functions:
            found.add(str(path.relative_to(root)))
    return found


def test_every_twin_file_is_in_the_registry_and_every_registered_one_exists():
    """A twin file the registry does not list fails here, and so does a listed one missing."""
    listed = {twin_file(package, example) for package in PACKAGES for example in EXAMPLE_NAMES}
    assert twin_files_on_disk() == listed
    assert all((REPO / path).is_file() for path in listed)


def test_the_finder_of_twin_files_finds_one_the_registry_lacks(tmp_path):
    """The check above can fail: a twin file in a package of its own, or a fourth one in a twin's
    package, is found; a helper module without EXAMPLE and main is not."""
    for path in ("plain_pytorch/gan.py", "jax_version/mnist_feedforward.py"):
        (tmp_path / path).parent.mkdir(exist_ok=True)
        (tmp_path / path).write_text('EXAMPLE = "gan"\n\n\ndef main():\n    pass\n')
    (tmp_path / "plain_pytorch" / "helpers.py").write_text("def main():\n    pass\n")
    found = twin_files_on_disk(tmp_path)
    assert found == {"plain_pytorch/gan.py", "jax_version/mnist_feedforward.py"}


def test_each_twin_names_its_example_and_its_folder_as_the_registry_does():
    """Each twin's EXAMPLE is its file name, and it passes its own folder ("plain", ...) to
    parse_args, so messages and --help name the file that was run."""
    for twin in TWINS:
        for example in EXAMPLE_NAMES:
            source = (REPO / twin_file(twin.package, example)).read_text()
            assert f'EXAMPLE = "{example}"\n' in source
            assert f'parse_args(EXAMPLE, "{twin.folder}", argv, about=__doc__)' in source


def test_the_steps_are_numbered_in_order_and_every_table_covers_every_example():
    """Steps 1, 2, 3, ...; the flag defaults, the ladder's lessons and the stress sizes hold an
    entry for each example and for nothing else."""
    assert [example.step for example in EXAMPLES] == list(range(1, len(EXAMPLES) + 1))
    assert list(DEFAULTS) == list(EXAMPLE_NAMES)
    assert list(ladder.LESSONS) == list(EXAMPLE_NAMES)
    assert [step.example for step in ladder.STEPS] == list(EXAMPLE_NAMES)
    assert list(stress.FLAGS) == list(EXAMPLE_NAMES)
    folders, packages = {twin.folder for twin in TWINS}, {twin.package for twin in TWINS}
    assert len(folders) == len(packages) == len(TWINS)
