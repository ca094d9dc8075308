"""Nothing lost: runs that stop early, runs killed mid-epoch, and runs that must not share folders.

Each test runs step 2 (`cnn_classifier`, the real training job) as a learner would: in its
own process, stopped from outside the way a machine or a person stops it. README's
"Reliability" section lists what each one proves.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from plain_pytorch.by_hand.checkpointing import load_checkpoint, network_weights
from shared.exits import INTERRUPTED
from shared.run_folders import claim_version
from tests.conftest import PACKAGES, REPO, twin

SLICE = ["--limit-train", "1536", "--limit-val", "128", "--accelerator", "cpu", "--no-progress"]  # 24 steps an epoch
FOLDER = {"plain_pytorch": "plain", "lightning_version": "lightning"}


def start(package: str, flags: list[str], cwd: Path) -> subprocess.Popen:
    """`python -m PACKAGE.cnn_classifier FLAGS`, its output unbuffered so the test can follow it line by line."""
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", f"{package}.cnn_classifier", *flags], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen) -> tuple[str, str]:
    # The timeout only stops a hung run; it is not a speed test.
    return process.communicate(timeout=600)


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


def test_last_ckpt_holds_the_last_epoch_even_after_val_loss_got_worse(mnist_dir, tmp_path, monkeypatch):
    """Both twins' last.ckpt is the last finished epoch, and best.ckpt the lowest val_loss, when the last epoch is worse.

    `ModelCheckpoint(monitor="val_loss", save_last=True)` would have left last.ckpt at the best epoch
    (it rewrites last.ckpt only when it saves a monitored checkpoint); a resume from it would redo
    epochs that had already run.
    """
    monkeypatch.chdir(tmp_path)
    flags = [*SLICE, "--limit-train", "256", "--data-dir", str(mnist_dir), "--epochs", "3", "--lr", "0.5",
             "--lr-step-gamma", "1", "--checkpoint-dir", "ck"]
    for package in PACKAGES:
        record = twin(package, "cnn_classifier").main(flags)
        best_epoch = record.val_loss.index(min(record.val_loss))
        assert best_epoch != 2  # the premise: the last epoch was not the best
        folder = tmp_path / f"ck/cnn_classifier/{FOLDER[package]}/version_0"
        assert load_checkpoint(folder / "last.ckpt")["epoch"] == 2
        assert load_checkpoint(folder / "best.ckpt")["epoch"] == best_epoch
    last = [network_weights(load_checkpoint(tmp_path / f"ck/cnn_classifier/{name}/version_0/last.ckpt"))
            for name in ("plain", "lightning")]
    assert same_weights(*last)


@pytest.mark.parametrize("package", PACKAGES)
def test_a_run_killed_mid_epoch_resumes_from_last_ckpt_to_bit_identical_weights(package, mnist_dir, tmp_path):
    """SIGKILL partway through epoch 1 of 3, then --resume last.ckpt: the final weights equal an uninterrupted run's."""
    flags = [*SLICE, "--data-dir", str(mnist_dir), "--epochs", "3"]
    whole = start(package, [*flags, "--checkpoint-dir", "whole", "--log-dir", "whole"], tmp_path)
    killed = start(package, [*flags, "--checkpoint-dir", "ck", "--log-dir", "ck"], tmp_path)
    last = tmp_path / f"ck/cnn_classifier/{FOLDER[package]}/version_0/last.ckpt"
    while not last.exists() and killed.poll() is None:  # written (atomically) after epoch 0
        time.sleep(0.01)
    time.sleep(0.2)  # into epoch 1, which takes about a second here
    killed.send_signal(signal.SIGKILL)
    finish(killed)
    assert killed.returncode == -signal.SIGKILL
    assert load_checkpoint(last)["epoch"] == 0  # it died mid-epoch 1: last.ckpt is still epoch 0's, whole
    resumed = start(package, [*flags, "--checkpoint-dir", "ck", "--log-dir", "ck", "--resume", str(last)], tmp_path)
    for process in (resumed, whole):
        out, err = finish(process)
        assert process.returncode == 0, err[-2000:]
    final = load_checkpoint(tmp_path / f"ck/cnn_classifier/{FOLDER[package]}/version_1/last.ckpt")  # a new version
    expected = load_checkpoint(tmp_path / f"whole/cnn_classifier/{FOLDER[package]}/version_0/last.ckpt")
    assert final["epoch"] == expected["epoch"] == 2
    assert same_weights(network_weights(final), network_weights(expected))


def test_ctrl_c_stops_both_twins_with_one_line_and_the_same_exit_status(mnist_dir, tmp_path):
    """SIGINT mid-epoch: both twins print Lightning's one line, exit with status 1, no traceback; last.ckpt is whole."""
    for package in PACKAGES:
        process = start(package, [*SLICE, "--data-dir", str(mnist_dir), "--epochs", "3", "--checkpoint-dir", "ck"],
                        tmp_path)
        for line in process.stdout:
            if line.startswith("epoch 0:"):  # validated once; now in epoch 1
                break
        time.sleep(0.3)
        process.send_signal(signal.SIGINT)
        out, err = finish(process)
        assert process.returncode == 1 and err == "", err[-2000:]  # --no-progress: stderr holds nothing else
        assert out.rstrip("\n").splitlines()[-1] == INTERRUPTED and "Traceback" not in out
        assert load_checkpoint(tmp_path / f"ck/cnn_classifier/{FOLDER[package]}/version_0/last.ckpt")["epoch"] == 0


def test_two_runs_started_together_keep_their_own_logs_and_checkpoints(mnist_dir, tmp_path):
    """Two runs of each twin started at once, into the same folders: version_0 and version_1, each whole."""
    flags = [*SLICE, "--limit-train", "256", "--data-dir", str(mnist_dir), "--epochs", "2", "--log-dir", "runs",
             "--checkpoint-dir", "runs"]  # logs and checkpoints in one version_N folder per run
    processes = [start(package, flags, tmp_path) for package in PACKAGES for _ in range(2)]
    for process in processes:
        out, err = finish(process)
        assert process.returncode == 0, err[-2000:]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for name in ("plain", "lightning"):
        folders = sorted((tmp_path / "runs/cnn_classifier" / name).iterdir())
        assert [folder.name for folder in folders] == ["version_0", "version_1"]
        for folder in folders:
            assert load_checkpoint(folder / "last.ckpt")["epoch"] == 1
            events = EventAccumulator(str(folder))
            events.Reload()
            assert [e.step for e in events.Scalars("train_loss")] == list(range(8))  # 4 steps x 2 epochs, once each


def test_claiming_a_version_skips_one_another_run_took_after_we_looked(tmp_path, monkeypatch):
    """The race itself: a stale listing says version_0 is free, but another run made it; we take version_1."""
    root = tmp_path / "cnn_classifier/plain"
    (root / "version_0").mkdir(parents=True)  # the other run's
    monkeypatch.setattr("shared.run_folders._versions", lambda root: [])  # what we listed a moment before
    assert claim_version(root) == 1 and (root / "version_1").is_dir()


@pytest.mark.parametrize("flags", [["--data-dir", "nowhere"], ["--resume", "plain.ckpt", "--epochs", "2"]],
                         ids=["no data", "the other twin's checkpoint"])
def test_the_lightning_twin_errors_in_one_line_even_after_the_trainer_spoke(flags, mnist_dir, tmp_path):
    """Found inside trainer.fit (the DataModule's setup, the resume check): stderr is the error line and nothing else."""
    torch.save({"model": {}, "epoch": 0}, tmp_path / "plain.ckpt")
    process = start("lightning_version", [*SLICE, "--data-dir", str(mnist_dir), *flags], tmp_path)
    out, err = finish(process)
    assert process.returncode == 2 and err.count("\n") == 1 and err.startswith("error: "), err
    assert "GPU available" in out  # Lightning's INFO lines went to stdout, beside the plain twin's prints
