"""The short form of `python -m tools.stress`: the twins agree run after run on a machine kept busy.
"""

import subprocess
import sys

import pytest


@pytest.mark.slow
def test_runs_under_load_in_other_folders_with_other_arguments_and_environments_agree_bit_for_bit(
        tmp_path):
    """Two runs of each of the three twins of step 3 (clipping on), with a core kept busy and each
    run's folder, argument length and environment size its own: every per-step loss equal to the
    first run's. The long form runs 20 of each, with every core kept busy."""
    done = subprocess.run([sys.executable, "-m", "tools.stress", "--runs", "2", "--examples",
                           "sum_dataset",
                           "--load", "1", "--load-seconds", "300"], cwd=tmp_path,
                           capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    # 2 plain, 2 Fabric, 2 Lightning
    assert "sum_dataset: 6 runs, 27 steps each: all identical, bit for bit" in done.stdout
    assert done.stdout.strip().endswith("every run identical")


def test_the_check_sees_a_difference_in_the_last_bit():
    """One loss one float32 step away from the others is a differing run."""
    import math

    from tools.stress import differing

    same = {"train_loss": [0.6931471824645996, 0.5], "val_loss": [0.4], "val_accuracy": [0.9]}
    nudged = dict(same, train_loss=[same["train_loss"][0], math.nextafter(0.5, 1)])
    results = [("plain", 0, same), ("lightning", 0, dict(same)), ("plain", 1, nudged)]
    assert differing(results) == [("plain", 1)]
