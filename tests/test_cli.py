"""One command-line interface for all six files; bad values never give a traceback.

Each bad value ends the program with one line on stderr and exit status 2. The in-process
tests cover every file and every bad value; the subprocess tests prove the real
`python -m` entry point behaves the same.
"""

import os
import subprocess
import sys

import pytest
import torch

from shared.cli import EXAMPLES, build_parser, exit_on_bad_input
from tests.conftest import EXAMPLES as EXAMPLE_NAMES
from tests.conftest import PACKAGES, REPO, twin

BAD_VALUES = [
    ["--batch-size", "0"],
    ["--batch-size", "-5"],
    ["--lr", "0"],
    ["--lr", "-0.1"],
    ["--lr", "nan"],
    ["--epochs", "0"],
    ["--limit-train", "0"],
    ["--limit-val", "0"],
    ["--accelerator", "tpu"],
    ["--seed", "-1"],
    ["--seed", str(2**32)],
    ["--epochs", "two"],
]


@pytest.mark.parametrize("bad", BAD_VALUES, ids=" ".join)
@pytest.mark.parametrize("package", PACKAGES)
@pytest.mark.parametrize("example", EXAMPLE_NAMES)
def test_bad_value_exits_2_with_one_line(example, package, bad, capsys):
    """Every file rejects every bad value with one line naming the flag, and status 2."""
    with pytest.raises(SystemExit) as exit_info, exit_on_bad_input():
        twin(package, example).main(bad)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and bad[0] in err


def test_gpu_without_a_gpu_exits_2(monkeypatch, capsys):
    """--accelerator gpu on a machine where torch sees no GPU is bad input, not a crash."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exit_info, exit_on_bad_input():
        twin("lightning_version", "sum_dataset").main(["--accelerator", "gpu"])
    assert exit_info.value.code == 2 and "--accelerator cpu" in capsys.readouterr().err


def test_unwritable_metrics_out_exits_2(tmp_path, capsys):
    """A --metrics-out path that cannot be written is reported in one line, after the run."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(SystemExit) as exit_info, exit_on_bad_input():
        twin("plain_pytorch", "sum_dataset").main(["--num-samples", "20", "--epochs", "1", "--metrics-out", str(blocker / "m.json")])
    assert exit_info.value.code == 2 and "--metrics-out" in capsys.readouterr().err


def test_all_six_files_share_flags_and_defaults(capsys):
    """Both twins of an example print the same --help; every example takes every common flag."""
    common = {"--epochs", "--batch-size", "--lr", "--seed", "--data-dir", "--limit-train", "--limit-val",
              "--dry-run", "--accelerator", "--metrics-out"}
    for example in EXAMPLES:
        flags = {opt for action in build_parser(example)._actions for opt in action.option_strings}
        assert common <= flags
        helps = []
        for package in PACKAGES:
            with pytest.raises(SystemExit):
                twin(package, example).main(["--help"])
            helps.append(capsys.readouterr().out)
        assert helps[0] == helps[1] and "--early-stopping-patience" in helps[0]
    defaults = vars(build_parser("mnist_feedforward").parse_args([]))
    assert {k: defaults[k] for k in ("epochs", "batch_size", "lr", "hidden_size", "lr_step_gamma", "precision")} == {
        "epochs": 2, "batch_size": 100, "lr": 1e-3, "hidden_size": 500, "lr_step_gamma": None, "precision": "32-true",
    }
    assert vars(build_parser("cnn_classifier").parse_args([]))["lr_step_gamma"] == 0.7  # pytorch/examples' StepLR


@pytest.mark.parametrize("package", PACKAGES)
@pytest.mark.parametrize("example", EXAMPLE_NAMES)
def test_entry_point_bad_value_has_no_traceback(example, package):
    """`python -m package.example --batch-size 0`: status 2, one line on stderr, no traceback."""
    done = subprocess.run(
        [sys.executable, "-m", f"{package}.{example}", "--batch-size", "0"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr and "--batch-size" in done.stderr


def test_resume_refuses_missing_unsafe_and_foreign_checkpoints(tmp_path, capsys):
    """--resume exits 2 with one line for a missing file, pickled code, a bare tensor, the other twin's or a misfit checkpoint."""
    import argparse

    unsafe = tmp_path / "unsafe.ckpt"  # a pickled object: what weights_only=False would let run code
    torch.save({"model": argparse.Namespace(payload=1)}, unsafe)
    twin("plain_pytorch", "sum_dataset").main(["--num-samples", "50", "--epochs", "1", "--no-progress", "--checkpoint-dir", "ck"])
    plain_checkpoint = tmp_path / "ck/sum_dataset/plain/last.ckpt"
    capsys.readouterr()
    twin("lightning_version", "sum_dataset").main(["--num-samples", "50", "--epochs", "1", "--no-progress", "--checkpoint-dir", "ck"])
    lightning_checkpoint = tmp_path / "ck/sum_dataset/lightning/last.ckpt"
    bare_tensor = tmp_path / "tensor.ckpt"
    torch.save(torch.zeros(3), bare_tensor)
    capsys.readouterr()
    for package, path, extra, words in [
        ("plain_pytorch", tmp_path / "missing.ckpt", [], "no checkpoint file"),
        ("lightning_version", unsafe, [], "loads safely"),
        ("plain_pytorch", bare_tensor, [], "holds no checkpoint"),
        ("lightning_version", plain_checkpoint, [], "not a Lightning checkpoint"),
        ("plain_pytorch", lightning_checkpoint, [], "not a plain_pytorch checkpoint"),
        ("plain_pytorch", plain_checkpoint, ["--hidden-size", "8"], "do not fit"),
        ("lightning_version", lightning_checkpoint, ["--num-features", "4"], "do not fit"),
    ]:
        with pytest.raises(SystemExit) as exit_info, exit_on_bad_input():
            twin(package, "sum_dataset").main(["--num-samples", "50", "--no-progress", "--resume", str(path)] + extra)
        err = capsys.readouterr().err  # the Lightning twin may have logged its INFO lines first
        assert exit_info.value.code == 2 and words in err.splitlines()[-1] and "Traceback" not in err


@pytest.mark.parametrize("flag", ["--log-dir", "--checkpoint-dir", "--metrics-out"])
def test_unwritable_output_folder_exits_2(flag, tmp_path, capsys):
    """An output path below a regular file is refused before any work starts."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(SystemExit) as exit_info, exit_on_bad_input():
        twin("lightning_version", "sum_dataset").main([flag, str(blocker / "sub" / "x")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and flag in err
