"""The benchmark script runs and prints its whole table; at a tiny size, since speed is not a test
here.

`python -m tools.benchmark` measures one full epoch per image row and step 4's tokens per second
over 120 steps (docs/costs.md); this only shows that every row works and that the ratios are
computed against the right rows.
"""

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tools.benchmark import GPT_MEASURES, GPT_UNTIMED, MEASURES, PLAIN_EXTRAS_OFF

# `--jobs 2` runs two measurements at a time: one thread each, so that they do not wait on one
# another's threads (the times are not figures here; `python -m tools.benchmark` alone makes them).
TWO_AT_A_TIME = dict(os.environ, OMP_NUM_THREADS="1")


@pytest.mark.slow
def test_benchmark_prints_every_measure_with_its_ratios(mnist_dir, tmp_path):
    """One rep on 200 images and a step-4 run of the fewest steps the clock allows: a row per
    measure, in seconds for the MLP and tokens per second for the GPT, the floor at 1.00x itself,
    the plain twin at 1.00x plain. (Two measurements at a time: their times are not figures
    here, only that every row runs.)"""
    done = subprocess.run([sys.executable, "-m", "tools.benchmark", "--data-dir", str(mnist_dir),
                           "--dataset", "mnist", "--reps", "1", "--limit-train", "200",
                           "--limit-val", "100", "--gpt-steps", str(GPT_UNTIMED + 2),
                           "--models", "mlp", "gpt", "--jobs", "2"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=900,
                          env=TWO_AT_A_TIME)
    assert done.returncode == 0, done.stderr[-2000:]
    for model, measures in (("mlp", MEASURES), ("gpt", GPT_MEASURES)):
        rows = {cells[2]: [cell.replace(",", "") for cell in cells[3:]]
                for line in done.stdout.splitlines() if line.startswith(f"| {model} ")
                for cells in [[cell.strip() for cell in line.split("|")]]}
        assert list(rows) == measures
        assert rows["floor"][2] == "1.00" and rows["plain"][3] == "1.00"
        assert all(float(value) > 0 and float(peak_mb) > 0
                   for value, _, _, _, peak_mb, _ in rows.values())
        # one rep: its median is its only value, so the spread is that value twice
        assert all(spread == f"{value}–{value}" for value, spread, *_ in rows.values())
    assert "| model | measure | median tokens/s |" in done.stdout


def test_benchmark_and_accuracy_refuse_bad_input_in_one_line(tmp_path, monkeypatch, capsys):
    """No data there, zero reps or jobs, an unknown measure or model, too few GPT steps for the
    clock, a measure step 4 does not have: one line on stderr, exit status 2.

    In this process (their `main()` reads the flags from sys.argv); tests/test_cli.py shows the
    tools' `python -m` entry point refusing a bad flag the same way."""
    import tools.accuracy
    import tools.benchmark

    cases = [(tools.benchmark, ["--data-dir", str(tmp_path)]), (tools.benchmark, ["--reps", "0"]),
             (tools.benchmark, ["--jobs", "0"]), (tools.benchmark,
                                                  ["--measures", "lightning, fast"]),
             (tools.benchmark, ["--models", "rnn"]), (tools.benchmark, ["--gpt-steps", "3"]),
             (tools.benchmark, ["--models", "gpt", "--measures", "lightning, no progress bar"]),
             (tools.accuracy,
                                                      ["--data-dir", str(tmp_path)]),
             (tools.accuracy, ["--limit-train", "0"])]
    for module, flags in cases:
        monkeypatch.setattr(sys, "argv", [module.__name__, *flags])
        with pytest.raises(SystemExit) as exit_info:
            module.main()
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err, flags


@pytest.mark.slow
def test_accuracy_table_trains_the_three_twins_and_they_agree(mnist_dir, monkeypatch, capsys):
    """`python -m tools.accuracy` (the Fashion-MNIST table of docs/costs.md), on 200 images, in this
    process: the three twins' test accuracy, identical."""
    import tools.accuracy

    monkeypatch.setattr(sys, "argv", ["accuracy", "--data-dir", str(mnist_dir), "--dataset",
                                      "mnist",
                                      "--limit-train", "200"])
    tools.accuracy.main()
    printed = capsys.readouterr().out
    ours = [line for line in printed.splitlines() if line.startswith(("| MLP", "| 2 conv"))]
    assert len(ours) == 2 and all(line.endswith("| yes |") for line in ours)
    assert "| published: 2 Conv+pooling (preprocessing: None) | 0.916 | |" in printed


def test_docs_cost_table_has_every_measure_of_both_models():
    """docs/costs.md pastes the script's table whole: a row per model and measure, none renamed."""
    costs = (REPO / "docs" / "costs.md").read_text()
    section = costs.split("## What Lightning costs")[1].split("\n## ")[0]
    missing = [f"{model}: {measure}" for model in ("mlp", "cnn") for measure in MEASURES
               if f"| {model} | {measure} |" not in section]
    assert missing == []


@pytest.mark.slow
def test_benchmark_measures_on_request_the_plain_twins_own_extras_and_the_cnns_barebones_row(
        mnist_dir, tmp_path):
    """`--measures` adds the plain twin without TensorBoard and without its bar (floor and plain
    always come first); and the CNN's `barebones=True` row runs: barebones forbids self.log, and
    step 2's nan check reads val_loss at the end of validation, so the benchmark switches that
    hook off too (it failed with a KeyError once the check came)."""
    done = subprocess.run([sys.executable, "-m", "tools.benchmark", "--data-dir", str(mnist_dir),
                           "--dataset", "mnist", "--reps", "1", "--limit-train", "200",
                           "--limit-val", "100",
                           "--models", "cnn", "--jobs", "2",
                           "--measures", *PLAIN_EXTRAS_OFF, "lightning, barebones=True"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=900,
                          env=TWO_AT_A_TIME)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line.split("|")[2].strip() for line in done.stdout.splitlines()
            if line.startswith("| cnn ")]
    assert rows == ["floor", "plain", *PLAIN_EXTRAS_OFF, "lightning, barebones=True"]


@pytest.mark.slow
def test_the_gpt_floor_trains_what_the_plain_twin_trains(tmp_path, monkeypatch):
    """Step 4's floor is the same training as the plain twin, less the twin's extras: its
    losses over 8 steps equal the twin's, bit for bit, on the benchmark's flags."""
    import argparse

    import torch.nn.functional as F

    import tools.benchmark
    from plain_pytorch import tiny_gpt
    from tests.conftest import as_a_command

    args = argparse.Namespace(gpt_steps=8)
    floor_losses, real_cross_entropy = [], F.cross_entropy

    def cross_entropy(*tensors, **options):  # the floor's own, noting each loss
        loss = real_cross_entropy(*tensors, **options)
        floor_losses.append(loss.item())
        return loss

    with monkeypatch.context() as patch:
        patch.setattr(F, "cross_entropy", cross_entropy)
        tools.benchmark.gpt_floor(args)
    with as_a_command():
        plain = tiny_gpt.main(tools.benchmark.gpt_flags(args, str(tmp_path)))
    assert len(floor_losses) == 8 and floor_losses == plain.train_loss
