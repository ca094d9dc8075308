"""README's 1.x → 2.x guide holds for the installed Lightning: one test per row.

Each row says what a classic 1.x call does now (an error, a warning, or silence) and what
replaces it. The test tries both for real, so when Lightning changes its behaviour, the
guide's row fails here instead of going stale (tools/lightning_1x.py holds the rows).
"""

import pytest

from tools.ladder import doc_block
from tools.lightning_1x import ROWS, table, try_call


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.old.strip("`"))
def test_the_old_call_does_what_the_guide_says_and_the_new_one_runs(row):
    """The 1.x call raises, warns or passes silently as its row says; its 2.x replacement runs
    without a word."""
    outcome, result = try_call(row.try_old)
    assert outcome.kind == row.kind and row.says in outcome.message
    # it runs: {"log": ...} logs nothing; precision=16 falls back to bf16 on a CPU
    if row.kind != "error":
        assert result == row.returns
    replacement, _ = try_call(row.try_new)
    assert replacement == ("silence", "")


def test_readme_guide_is_the_rows_as_they_are_now():
    """README's "From Lightning 1.x to 2.x" table is exactly what tools/lightning_1x.py prints."""
    assert doc_block("lightning-1x") == table()
