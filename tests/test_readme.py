"""README tells the truth about how to run things."""

import re

from tests.conftest import REPO


def readme_commands() -> list[str]:
    return re.findall(r"^(python3 -m venv .*)$", (REPO / "README.md").read_text(),
                      flags=re.MULTILINE)


def test_ci_runs_readme_test_command_word_for_word():
    """.ci/run runs exactly the test command README gives a learner."""
    test_commands = [c for c in readme_commands() if "pytest" in c]
    assert len(test_commands) == 1
    assert test_commands[0] in (REPO / ".ci" / "run").read_text().splitlines()


def test_readme_main_job_runs_the_comparison():
    """README's main-job command runs all nine files through tools.compare."""
    assert any("-m tools.compare" in c for c in readme_commands())


def test_readme_one_liner_table_is_what_the_code_counts():
    """README's "The one-liner and what it does" table is exactly what tools/one_liners.py counts
    now."""
    from tools.ladder import doc_block
    from tools.one_liners import table

    assert doc_block("one-liners") == table()


def test_readme_ladder_table_is_what_the_code_counts():
    """README's ladder table (steps, flags, code lines of each twin) is exactly what
    tools/ladder.py counts now."""
    from tools.ladder import doc_block, table

    assert doc_block("ladder") == table()


def test_readme_main_job_table_has_the_step_counts_the_defaults_give():
    """The steps column of README's main-job table is what each example's defaults give on 8,000
    training samples."""
    import math

    from shared.flags import DEFAULTS
    from tools.ladder import doc_block

    expected = {name: defaults["epochs"] * math.ceil(8000 / defaults["batch_size"]) for name, defaults in DEFAULTS.items()}
    rows = [line.split("|") for line in doc_block("main-job").splitlines() if line.startswith("| ")]
    found = {cells[1].strip(): int(cells[2]) for cells in rows if cells[1].strip() in DEFAULTS}
    assert found == expected


def test_which_one_code_line_table_is_what_the_code_counts():
    """docs/which-one.md's table (each twin's code lines, with the by_hand/ files it imports) is
    what tools/ladder.py counts now."""
    from tools.ladder import code_lines_table, doc_block

    assert doc_block("code-lines") == code_lines_table()
