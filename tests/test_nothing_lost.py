"""Nothing lost, round three: full disks, damaged checkpoints, litter from killed saves.

Each twin is run as a learner runs it (`main()` inside `as_a_command()`, or its own process
where a kill is the point); the faults are made the cheapest way that still goes through the
twin's real code: a filesystem that reports no free space, a TensorBoard writer whose disk
fills up, checkpoints crafted from one tiny saved checkpoint per twin.
"""

import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import FOLDERS, PACKAGES, REPO, as_a_command, twin

TINY = ["--limit-train", "64", "--limit-val", "32", "--no-progress", "--accelerator", "cpu"]
SUM_TINY = ["--num-samples", "50", "--epochs", "1", "--no-progress", "--accelerator", "cpu"]


def run_as_a_command(package: str, example: str, flags: list[str], capsys) -> tuple[int, str]:
    """Run one twin's `main(flags)` as its `__main__` does; return its exit status and stderr."""
    capsys.readouterr()
    try:
        with as_a_command():
            twin(package, example).main(flags)
        status = 0
    except SystemExit as exit_:
        status = exit_.code
    err = capsys.readouterr().err  # less the hint Lightning prints where SLURM's srun is installed
    return status, "".join(line for line in err.splitlines(True) if "`srun`" not in line)


@pytest.fixture(scope="module")
def saved(tmp_path_factory, mnist_dir) -> dict:
    """One tiny step 2 checkpoint per twin ({package: (folder, checkpoint)}), from runs into a
    checkpoint folder where an earlier save was killed: each root's version_0 holds a stale
    `.last.ckpt.part` that no process holds any more."""
    root = tmp_path_factory.mktemp("saved")
    here = Path.cwd()
    os.chdir(root)
    checkpoints = {}
    try:
        for package in PACKAGES:
            stale = root / f"ck/cnn_classifier/{FOLDERS[package]}/version_0/.last.ckpt.part"
            stale.parent.mkdir(parents=True)
            stale.write_bytes(b"half a checkpoint")  # what a SIGKILL mid-save leaves
            twin(package, "cnn_classifier").main([*TINY, "--data-dir", str(mnist_dir),
                                                  "--epochs", "1", "--checkpoint-dir", "ck"])
            last = root / f"ck/cnn_classifier/{FOLDERS[package]}/version_1/last.ckpt"
            checkpoints[package] = torch.load(last, weights_only=True)
    finally:
        os.chdir(here)
    return {"root": root, **checkpoints}


@pytest.mark.slow  # the fixture trains each twin once
def test_the_next_run_into_a_checkpoint_folder_removes_a_killed_saves_part_file(saved):
    """Every twin: the `.part` file a killed save left in version_0 is gone after the next run
    in that checkpoint folder, and no run leaves one of its own."""
    for package in PACKAGES:
        folder = saved["root"] / f"ck/cnn_classifier/{FOLDERS[package]}"
        assert sorted(path.name for path in folder.rglob("*") if path.is_file()) == [
            "best.ckpt", "last.ckpt"], package


def test_a_part_file_a_save_is_writing_right_now_is_kept(tmp_path):
    """The sweep removes only litter: a `.part` whose save still holds its lock stays."""
    import fcntl

    from shared.checkpoint_files import remove_stale_parts

    (tmp_path / ".best.ckpt.part").write_bytes(b"dead")
    with open(tmp_path / ".last.ckpt.part", "wb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as atomic_save holds it while torch.save writes
        assert remove_stale_parts(tmp_path) == [tmp_path / ".best.ckpt.part"]
    assert [path.name for path in tmp_path.iterdir()] == [".last.ckpt.part"]


# Each kind of damage, made to the twin's own checkpoint, and words of the line refusing it.
# The keys: where each twin keeps its weights, optimizer and scheduler state.
KEYS = {"plain_pytorch": ("model", "optimizer", "scheduler"),
        "fabric_version": ("model", "optimizer", "scheduler"),
        "lightning_version": ("state_dict", "optimizer_states", "lr_schedulers")}


def damage(package: str, checkpoint: dict, kind: str) -> dict:
    """A copy of `checkpoint` with one kind of damage."""
    import copy

    checkpoint = copy.deepcopy(checkpoint)
    weights, optimizer, scheduler = KEYS[package]
    optimizer_state = checkpoint[optimizer][0] if package == "lightning_version" \
        else checkpoint[optimizer]
    scheduler_state = checkpoint[scheduler][0] if package == "lightning_version" \
        else checkpoint[scheduler]
    if kind == "buffer shape":
        optimizer_state["state"][0]["momentum_buffer"] = torch.zeros(3)
    elif kind == "buffer dtype":
        buffer = optimizer_state["state"][1]["momentum_buffer"]
        optimizer_state["state"][1]["momentum_buffer"] = buffer.double()
    elif kind == "optimizer lr":
        optimizer_state["param_groups"][0]["lr"] = "0.01"
    elif kind == "scheduler":
        scheduler_state["base_lrs"] = [0.01, 0.01]
    elif kind == "scheduler epoch":
        scheduler_state["last_epoch"] = "1"
    elif kind == "torch generator":
        checkpoint["rng_states"]["torch"] = torch.zeros(5, dtype=torch.uint8)
    elif kind == "python generator":
        checkpoint["rng_states"]["python"] = (3, (1, 2), None)
    elif kind == "weights dtype":
        key = next(iter(checkpoint[weights]))
        checkpoint[weights][key] = checkpoint[weights][key].double()
    elif kind == "flag type":
        checkpoint["run_flags"]["lr"] = "0.01"
    return checkpoint


DAMAGE = {
    "buffer shape": "its optimizer's momentum_buffer for parameter 0 is (3,) torch.float32, not",
    "buffer dtype": "its optimizer's momentum_buffer for parameter 1 is (16,) torch.float64",
    "optimizer lr": "its optimizer's lr is '0.01', not a number",
    "scheduler": "its scheduler's base_lrs is [0.01, 0.01], not one learning rate per group",
    "scheduler epoch": "its scheduler state has no epoch count",
    "torch generator": "its random generators' states are not torch's, Python's and NumPy's",
    "python generator": "its random generators' states are not torch's, Python's and NumPy's",
    "weights dtype": "its weights do not fit this model",
    "flag type": "its saved --lr is '0.01', a str, not a float",
}


TWIN_NAMES = dict(FOLDERS)  # package -> the twin's name, "plain", "fabric", "lightning"


@pytest.mark.slow  # the fixture trains each twin once
@pytest.mark.parametrize("package", PACKAGES)
def test_each_kind_of_checkpoint_damage_is_refused_in_one_line_before_training(
        package, saved, mnist_dir, tmp_path, capsys):
    """Every twin refuses each crafted damage (an optimizer buffer of another shape or dtype, a
    learning rate that is a string, a scheduler for another number of groups, a 5-byte
    generator state, weights of another dtype, a saved flag of the wrong type) in one line
    that names it, before its first step; the untouched file passes.

    Each kind is checked where every twin reads --resume (`load_checkpoint_checked`: the plain
    twin's `resume`, the others' checkpoint plugin); two of them go through the whole twin,
    which exits 2 with that one line and leaves no run folder behind."""
    from shared.checkpoint_files import load_checkpoint_checked
    from shared.flags import parse_args
    from shared.models import ConvNet
    from shared.run_end import BadInput

    name = TWIN_NAMES[package]
    args = parse_args("cnn_classifier", name, ["--epochs", "2"])
    # what each twin checks against: the LightningModule in the Lightning twin
    model = (twin(package, "cnn_classifier").LitConvNet(0.01, 0.9, 0.7)
             if name == "lightning" else ConvNet())
    torch.save(saved[package], tmp_path / "whole.ckpt")
    assert load_checkpoint_checked(tmp_path / "whole.ckpt", name, model, args)["epoch"] == 0
    for kind, words in DAMAGE.items():
        torch.save(damage(package, saved[package], kind), tmp_path / "x.ckpt")
        with pytest.raises(BadInput) as refused:
            load_checkpoint_checked(tmp_path / "x.ckpt", name, model, args)
        assert words in str(refused.value) and "\n" not in str(refused.value), kind
        assert "pass --lr 0.01" not in str(refused.value)  # the line that contradicted itself
    for kind in ("buffer shape", "torch generator"):  # the Fabric twin's tracebacks of before
        torch.save(damage(package, saved[package], kind), tmp_path / "x.ckpt")
        status, err = run_as_a_command(package, "cnn_classifier",
                                       [*TINY, "--data-dir", str(mnist_dir), "--epochs", "2",
                                        "--resume", "x.ckpt"], capsys)
        assert status == 2 and err.count("\n") == 1 and DAMAGE[kind] in err, (kind, err)
    assert not (tmp_path / "runs").exists()  # each refused run removed its version_N


@pytest.mark.parametrize("package", PACKAGES)
@pytest.mark.parametrize("flag", ["--metrics-out", "--log-dir"])
def test_an_output_on_a_full_disk_is_refused_before_training(flag, package, tmp_path,
                                                              monkeypatch, capsys):
    """A filesystem with no free blocks still lets an empty file be created; the free space is
    asked for too, so the run is refused (one line, status 2) instead of losing its results."""
    import shared.machine_checks

    real = os.statvfs

    def full(path):  # what statvfs says of a full disk (mounted at full/): no blocks available
        result = real(path)
        if Path(path).name != "full":
            return result
        return os.statvfs_result((*result[:4], 0, *result[5:]))

    monkeypatch.setattr(shared.machine_checks.os, "statvfs", full)
    (tmp_path / "full").mkdir()
    value = "full/m.json" if flag == "--metrics-out" else "full"
    status, err = run_as_a_command(package, "sum_dataset", [*SUM_TINY, flag, value], capsys)
    assert status == 2 and err.count("\n") == 1, err
    assert f"argument {flag}: cannot write into" in err and "only 0.0 MiB free there, of the" in err
    assert [path.name for path in tmp_path.iterdir()] == ["full"]
    assert not list((tmp_path / "full").iterdir())


@pytest.mark.parametrize("package", PACKAGES)
def test_results_that_cannot_be_written_at_the_end_are_kept_and_the_line_says_where(
        package, tmp_path, monkeypatch, capsys):
    """The disk fills up during the run: --metrics-out cannot be written at the end; the record
    goes to a file in the temporary folder, one line names it, status 1, and no empty or
    half-written --metrics-out is left."""
    import shared.run_record

    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(shared.run_record.tempfile, "tempdir", None)  # read TMPDIR again

    def disk_full(path, text):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(shared.run_record, "_write_whole", disk_full)
    status, err = run_as_a_command(package, "sum_dataset", [*SUM_TINY, "--metrics-out", "m.json"],
                                   capsys)
    kept = list((tmp_path / "tmp").iterdir())
    assert status == 1 and err.count("\n") == 1, err
    assert err == (f"error: cannot write --metrics-out m.json (No space left on device); its "
                   f"results are in {kept[0]}\n")
    record = json.loads(kept[0].read_text())
    assert record["implementation"] == FOLDERS[package] and len(record["train_loss"]) == 1
    assert not (tmp_path / "m.json").exists()


@pytest.mark.parametrize("package", PACKAGES)
def test_a_tensorboard_writer_that_fails_mid_run_ends_in_one_line_and_keeps_the_steps(
        package, tmp_path, monkeypatch, capsys):
    """The disk fills up under TensorBoard's writer thread: no thread traceback, one line
    naming the OS error, status 1, and --metrics-out holds the steps that ran."""
    from tensorboard.summary.writer import record_writer

    real, writes = record_writer.RecordWriter.write, []

    def fills_up(self, data):
        writes.append(data)
        if len(writes) > 3:  # the file's header and a few scalars, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, data)

    monkeypatch.setattr(record_writer.RecordWriter, "write", fills_up)
    status, err = run_as_a_command(package, "sum_dataset",
                                   [*SUM_TINY, "--num-samples", "400", "--metrics-out", "m.json"],
                                   capsys)
    assert status == 1 and err.count("\n") == 1, err
    assert err.startswith("error: No space left on device") and "the run stopped there" in err
    assert "Traceback" not in err
    assert json.loads((tmp_path / "m.json").read_text())["train_loss"]  # the steps that ran


KILLED_SAVES = r"""
import os, sys, threading, time, torch
from pathlib import Path
import shared.checkpoint_files as files
from by_hand.checkpointing import Checkpoints
from shared.checkpoint_plugin import CheckedCheckpointIO
from shared.flags import parse_args
from shared.models import ConvNet

def half_then_hang(obj, path):  # write half a file, then wait to be killed
    Path(path).write_bytes(b"half")
    os.write(1, b"saving\n")  # one write: the three threads' lines do not interleave
    time.sleep(600)
files.torch.save = half_then_hang
root = Path(sys.argv[1])
def plugin(twin):
    return CheckedCheckpointIO(ConvNet(), parse_args("cnn_classifier", twin, []), twin)
saves = [lambda: Checkpoints(root / "plain").save({"epoch": 0}, 1.0),
         lambda: plugin("fabric").save_checkpoint({"epoch": 0}, root / "fabric/last.ckpt"),
         lambda: plugin("lightning").save_checkpoint({"epoch": 0}, root / "lightning/best.ckpt")]
for save in saves:
    threading.Thread(target=save, daemon=True).start()
time.sleep(600)
"""


@pytest.mark.slow
def test_saves_killed_midway_leave_part_files_that_the_next_save_removes(tmp_path):
    """SIGKILL during a save of each twin (the plain twin's `Checkpoints.save`, the Fabric and
    Lightning twins' checkpoint plugin), all three in one process: each leaves a `.part`, which
    the next save into that folder removes, writing its own file whole."""
    from shared.checkpoint_files import atomic_save

    env = dict(os.environ, PYTHONPATH=str(REPO))
    process = subprocess.Popen([sys.executable, "-c", KILLED_SAVES, str(tmp_path)],
                               cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True)
    assert [process.stdout.readline() for _ in range(3)] == ["saving\n"] * 3
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    for name in FOLDERS.values():
        folder = tmp_path / name
        assert len(list(folder.glob(".*.part"))) == 1  # the litter a kill leaves
        atomic_save(folder / "last.ckpt", {"epoch": 1})
        assert sorted(path.name for path in folder.iterdir()) == ["last.ckpt"]
        assert torch.load(folder / "last.ckpt", weights_only=True) == {"epoch": 1}


@pytest.mark.parametrize("package", PACKAGES)
def test_run_folders_removed_mid_run_end_in_one_line_with_the_steps_kept(package, tmp_path,
                                                                         monkeypatch, capsys):
    """The run's log folder removed right after epoch 0 (as `rm -rf runs` would): one line on
    stderr naming what failed, status 1, and --metrics-out holds epoch 0's steps and
    validation. (Step 3: the cheapest run that writes TensorBoard logs.)"""
    import shutil

    from shared.run_record import RunRecord

    real = RunRecord.end_epoch

    def then_removed(self, *args):
        line = real(self, *args)
        shutil.rmtree(tmp_path / "runs", ignore_errors=True)
        return line

    monkeypatch.setattr(RunRecord, "end_epoch", then_removed)
    status, err = run_as_a_command(package, "sum_dataset",
                                   [*SUM_TINY, "--epochs", "3", "--metrics-out", "m.json"], capsys)
    assert status == 1 and err.count("\n") == 1, err
    assert err.startswith("error: No such file or directory: ") and err.endswith(
        "; the run stopped there\n"), err
    record = json.loads((tmp_path / "m.json").read_text())
    # epoch 0's step and validation, and the epochs after it that ran before the failed write
    # surfaced (TensorBoard's writer thread flushes later on a busy machine), none lost
    assert 1 <= len(record["val_loss"]) <= len(record["train_loss"]) <= 3
