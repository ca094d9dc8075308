"""The quick tier keeps the promise: plain `pytest` still runs a parity test of every example and a
bad-input test of every twin, so marking a test slow can never drop one of those claims unseen.

The check collects the suite as plain `pytest` would (without `--full`), in this process, and reads
the tests it keeps: their names, and the example and twin each one is parametrized with.
"""

import pytest

from tests.conftest import EXAMPLES, PACKAGES, REPO


class KeptTests:
    """A pytest plugin that keeps the items a collection ends with, after the tiers' deselection."""

    def __init__(self):
        self.items = []

    def pytest_collection_finish(self, session):
        self.items = list(session.items)


def collect(*flags: str) -> list:
    """The tests `pytest FLAGS` would run from the repository root: collected, not run."""
    kept = KeptTests()
    where = ["--rootdir", str(REPO), "-c", str(REPO / "pyproject.toml")]
    status = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", *where, *flags,
                          str(REPO / "tests")], plugins=[kept])
    assert status == pytest.ExitCode.OK and kept.items, status
    return kept.items


@pytest.fixture(scope="module")
def quick_tier() -> list:
    """The tests plain `pytest` runs."""
    return collect()


def test_full_adds_the_slow_tests_and_the_quick_tier_leaves_out_only_them(quick_tier):
    """`--full` runs every test; plain `pytest` all but the slow ones (deselected: no skip to read
    as a missing feature); `-m slow` still selects by its own expression."""
    full = collect("--full")
    slow = [item.nodeid for item in full if item.get_closest_marker("slow")]
    assert slow and [item.nodeid for item in quick_tier] == [item.nodeid for item in full
                                                             if item.nodeid not in slow]
    assert [item.nodeid for item in collect("-m", "slow")] == slow


def test_the_quick_tier_holds_a_parity_test_of_every_example(quick_tier):
    """tests/test_parity.py's three-way `==` test of each example (`test_EXAMPLE_twins_match...`)
    runs in plain `pytest`, and so does the dry run of each example through its three twins."""
    parity = {item.originalname for item in quick_tier if item.path.name == "test_parity.py"}
    assert [example for example in EXAMPLES
            if not any(name.startswith(f"test_{example}_twins_match") for name in parity)] == []
    dry_runs = {item.callspec.params["example"] for item in quick_tier
                if item.originalname == "test_dry_run_is_one_batch_each_way"}
    assert dry_runs == set(EXAMPLES)


def test_the_quick_tier_holds_a_bad_input_test_of_every_twin(quick_tier):
    """Every bad value refused in one line by each twin (tests/test_cli.py), and each
    package's `python -m` entry point refusing one, run in plain `pytest`."""
    refused = {(item.callspec.params["example"], item.callspec.params["package"])
               for item in quick_tier
               if item.originalname == "test_bad_value_exits_2_with_one_line"}
    assert refused == {(example, package) for example in EXAMPLES for package in PACKAGES}
    entry_points = {item.callspec.params["package"] for item in quick_tier
                    if item.originalname == "test_entry_point_bad_value_has_no_traceback"}
    assert entry_points == set(PACKAGES)
