"""Nothing lost: runs that stop early, runs killed mid-epoch, and runs that must not share folders.

Each test runs step 2 (`cnn_classifier`, the real training job) as a learner would: in its
own process, stopped from outside the way a machine or a person stops it. README's
"Reliability" section lists what each one proves.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from by_hand.checkpointing import load_checkpoint_unchecked, network_weights
from shared.run_end import INTERRUPTED
from shared.run_folders import claim_version
from tests.conftest import FOLDERS as FOLDER
from tests.conftest import PACKAGES, REPO, as_a_command, at_once, twin

# 24 steps an epoch
SLICE = ["--limit-train", "1536", "--limit-val", "128", "--accelerator", "cpu", "--no-progress"]
# For runs started together: one thread each, so that they compute alike (the same kernels) and
# do not wait on one another's threads.
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def start(package: str, flags: list[str], cwd: Path, env: dict | None = None) -> subprocess.Popen:
    """`python -m PACKAGE.cnn_classifier FLAGS`, its output unbuffered so the test can follow it
    line by line; `env`: variables to add."""
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.Popen([sys.executable, "-m", f"{package}.cnn_classifier", *flags], cwd=cwd,
                            env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen) -> tuple[str, str]:
    # The timeout only stops a hung run; it is not a speed test.
    return process.communicate(timeout=600)


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


@pytest.mark.slow  # nine training runs: the quick tier's budget
def test_last_ckpt_holds_the_last_epoch_even_after_val_loss_got_worse(mnist_dir, tmp_path,
                                                                      monkeypatch):
    """Every twin's last.ckpt is the last finished epoch, and best.ckpt the lowest val_loss, when
    the last epoch is worse.

    `ModelCheckpoint(monitor="val_loss", save_last=True)` would have left last.ckpt at the best
    epoch (it rewrites last.ckpt only when it saves a monitored checkpoint); a resume from it
    would redo epochs that had already run."""
    monkeypatch.chdir(tmp_path)
    flags = [*SLICE, "--limit-train", "256", "--data-dir", str(mnist_dir), "--epochs", "3", "--lr",
             "0.5",
             "--lr-step-gamma", "1", "--checkpoint-dir", "ck"]
    for package in PACKAGES:
        record = twin(package, "cnn_classifier").main(flags)
        best_epoch = record.val_loss.index(min(record.val_loss))
        assert best_epoch != 2  # the premise: the last epoch was not the best
        folder = tmp_path / f"ck/cnn_classifier/{FOLDER[package]}/version_0"
        assert load_checkpoint_unchecked(folder / "last.ckpt")["epoch"] == 2
        assert load_checkpoint_unchecked(folder / "best.ckpt")["epoch"] == best_epoch
    folders = [tmp_path / "ck/cnn_classifier" / name / "version_0" for name in FOLDER.values()]
    last = [network_weights(load_checkpoint_unchecked(folder / "last.ckpt")) for folder in folders]
    assert same_weights(last[0], last[1]) and same_weights(last[0], last[2])


@pytest.fixture(scope="module")
def killed_and_resumed(mnist_dir, tmp_path_factory) -> dict[str, dict]:
    """Each twin SIGKILLed partway through epoch 1 of 3, then resumed from its last.ckpt; beside
    it, the same twin's uninterrupted run. The six runs at once, one thread each (so that each
    computes alike however busy the machine is). Per twin: the killed run's status, its
    last.ckpt's epoch after the kill, the resumed run's status and stderr, and the final
    checkpoints of the resumed and the uninterrupted runs."""
    folder = tmp_path_factory.mktemp("killed")
    flags = [*SLICE, "--data-dir", str(mnist_dir), "--epochs", "3"]

    def killed_then_resumed(package: str) -> dict:
        last = folder / f"ck/cnn_classifier/{FOLDER[package]}/version_0/last.ckpt"
        killed = start(package, [*flags, "--checkpoint-dir", "ck", "--log-dir", "ck"], folder,
                       ONE_THREAD)
        while not last.exists() and killed.poll() is None:  # saved after epoch 0
            time.sleep(0.01)
        time.sleep(0.2)  # into epoch 1, which takes a second or more here
        killed.send_signal(signal.SIGKILL)
        finish(killed)
        run = {"killed": killed.returncode,
               "last after the kill": load_checkpoint_unchecked(last)["epoch"]}
        resumed = start(package, [*flags, "--checkpoint-dir", "ck", "--log-dir", "ck",
                                  "--resume", str(last)], folder, ONE_THREAD)
        run["stderr"] = finish(resumed)[1]
        run["resumed"] = resumed.returncode
        run["final"] = load_checkpoint_unchecked(last.parent.parent / "version_1/last.ckpt")
        return run

    def uninterrupted(package: str) -> dict:
        finish(start(package, [*flags, "--checkpoint-dir", "whole", "--log-dir", "whole"], folder,
                     ONE_THREAD))
        return load_checkpoint_unchecked(
            folder / f"whole/cnn_classifier/{FOLDER[package]}/version_0/last.ckpt")

    jobs = [(killed_then_resumed, package) for package in PACKAGES]
    jobs += [(uninterrupted, package) for package in PACKAGES]
    done = at_once(lambda job: job[0](job[1]), jobs)
    return {package: dict(run, expected=expected)
            for package, run, expected in zip(PACKAGES, done, done[len(PACKAGES):])}


@pytest.mark.slow
@pytest.mark.parametrize("package", PACKAGES)
def test_a_run_killed_mid_epoch_resumes_from_last_ckpt_to_bit_identical_weights(package,
                                                                                killed_and_resumed):
    """SIGKILL partway through epoch 1 of 3, then --resume last.ckpt: the final weights equal an
    uninterrupted run's."""
    run = killed_and_resumed[package]
    assert run["killed"] == -signal.SIGKILL
    # it died mid-epoch 1: last.ckpt is still epoch 0's, whole
    assert run["last after the kill"] == 0
    assert run["resumed"] == 0, run["stderr"][-2000:]
    assert run["final"]["epoch"] == run["expected"]["epoch"] == 2
    assert same_weights(network_weights(run["final"]), network_weights(run["expected"]))


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["Ctrl-C", "SIGTERM"])
def test_ctrl_c_and_sigterm_stop_every_twin_alike_and_keep_what_ran(stop, mnist_dir, tmp_path):
    """SIGINT or SIGTERM mid-epoch: Lightning's one line, exit status 1, no traceback, last.ckpt
    whole, the steps kept.

    SIGTERM is what `docker stop`, Kubernetes and SLURM send. Lightning's Trainer alone exits 0
    on it with no metrics, as if it had finished; every twin now stops on it as on Ctrl-C."""
    def stopped(package: str) -> tuple[int, str, str]:
        flags = [*SLICE, "--data-dir", str(mnist_dir), "--epochs", "3", "--checkpoint-dir", "ck",
                 "--metrics-out", f"{package}.json"]
        process = start(package, flags, tmp_path, ONE_THREAD)
        for line in process.stdout:
            if line.startswith("epoch 0:"):  # validated once; now in epoch 1
                break
        time.sleep(0.3)
        process.send_signal(stop)
        out, err = finish(process)
        return process.returncode, out, err

    with ThreadPoolExecutor(max_workers=len(PACKAGES)) as pool:  # the three twins at once
        ended = dict(zip(PACKAGES, pool.map(stopped, PACKAGES)))
    records = {}
    for package, (status, out, err) in ended.items():
        # --no-progress: stderr holds nothing else
        assert status == 1 and err == "", err[-2000:]
        assert out.rstrip("\n").splitlines()[-1] == INTERRUPTED and "Traceback" not in out
        last = tmp_path / f"ck/cnn_classifier/{FOLDER[package]}/version_0/last.ckpt"
        assert load_checkpoint_unchecked(last)["epoch"] == 0
        records[package] = json.loads((tmp_path / f"{package}.json").read_text())
        # epoch 0, kept
        assert len(records[package]["val_loss"]) == 1 and len(records[package]["train_loss"]) >= 24
    plain, fabric, lightning = records.values()
    shared_steps = min(len(record["train_loss"]) for record in records.values())
    assert (plain["train_loss"][:shared_steps] == fabric["train_loss"][:shared_steps]
            == lightning["train_loss"][:shared_steps])


@pytest.mark.slow
def test_two_runs_started_together_keep_their_own_logs_and_checkpoints(mnist_dir, tmp_path):
    """Two runs of each twin started at once, into the same folders: version_0 and version_1,
    each whole."""
    flags = [*SLICE, "--limit-train", "256", "--data-dir", str(mnist_dir), "--epochs", "2",
             "--log-dir", "runs",
             "--checkpoint-dir", "runs"]  # logs and checkpoints in one version_N folder per run
    processes = [start(package, flags, tmp_path, ONE_THREAD) for package in PACKAGES
                 for _ in range(2)]
    for process in processes:
        out, err = finish(process)
        assert process.returncode == 0, err[-2000:]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for name in FOLDER.values():
        folders = sorted((tmp_path / "runs/cnn_classifier" / name).iterdir())
        assert [folder.name for folder in folders] == ["version_0", "version_1"]
        for folder in folders:
            assert load_checkpoint_unchecked(folder / "last.ckpt")["epoch"] == 1
            events = EventAccumulator(str(folder))
            events.Reload()
            # 4 steps x 2 epochs, once each
            assert [e.step for e in events.Scalars("train_loss")] == list(range(8))


def test_claiming_a_version_skips_one_another_run_took_after_we_looked(tmp_path, monkeypatch):
    """The race itself: a stale listing says version_0 is free, but another run made it; we take
    version_1."""
    root = tmp_path / "cnn_classifier/plain"
    (root / "version_0").mkdir(parents=True)  # the other run's
    # what we listed a moment before
    monkeypatch.setattr("shared.run_folders._versions", lambda root: [])
    assert claim_version(root) == 1 and (root / "version_1").is_dir()


@pytest.mark.parametrize("listed", ["in order", "newest first"])
def test_a_run_after_earlier_runs_gets_the_version_it_claimed_and_prints(listed, tmp_path,
                                                                          monkeypatch, capsys):
    """After earlier runs (version_0 to version_4, in whatever order the folder lists them), a
    run claims version_5, prints it, and hands it to its loggers (the Fabric and Lightning
    twins' TensorBoardLogger(version=run.version)): not the last earlier folder it looked in."""
    import argparse

    from shared import run_folders

    root = tmp_path / "runs/tiny_gpt/lightning"
    for number in range(5):
        (root / f"version_{number}").mkdir(parents=True)
    listing = run_folders._versions
    order = {"in order": sorted, "newest first": lambda numbers: sorted(numbers, reverse=True)}
    monkeypatch.setattr(run_folders, "_versions", lambda folder: order[listed](listing(folder)))
    args = argparse.Namespace(dry_run=False, log_dir=str(tmp_path / "runs"), checkpoint_dir=None)
    run = run_folders.claim_run_folders(args, "tiny_gpt", "lightning")
    assert (run.version, run.logs) == (5, root / "version_5")
    assert capsys.readouterr().out == f"this run writes to {root / 'version_5'}\n"


SPOKE_FIRST = {"no data": ["--data-dir", "nowhere"],
               "the other twin's checkpoint": ["--resume", "plain.ckpt", "--epochs", "2"]}


def ended(process: subprocess.Popen) -> tuple[int, str, str]:
    """A run's exit status, stdout and stderr, once it has ended."""
    out, err = finish(process)
    return process.returncode, out, err


@pytest.fixture(scope="module")
def refused_after_lightning_spoke(mnist_dir, tmp_path_factory) -> dict:
    """The Fabric and Lightning twins given data that is not there, or the plain twin's
    checkpoint to resume, the four runs at once: (case, package) -> (status, stdout, stderr)."""
    cases = [(case, package) for case in SPOKE_FIRST for package in PACKAGES[1:]]

    def refused(case_and_package: tuple) -> tuple[int, str, str]:
        case, package = case_and_package
        folder = tmp_path_factory.mktemp("refused")
        torch.save({"model": {}, "epoch": 0}, folder / "plain.ckpt")
        return ended(start(package, [*SLICE, "--data-dir", str(mnist_dir), *SPOKE_FIRST[case]],
                           folder))

    return dict(zip(cases, at_once(refused, cases)))


@pytest.mark.parametrize("package", PACKAGES[1:])
@pytest.mark.parametrize("case", SPOKE_FIRST)
def test_the_lightning_and_fabric_twins_error_in_one_line_even_after_lightning_spoke(
        case, package, refused_after_lightning_spoke):
    """Found inside trainer.fit or after Fabric started (the data, the resume check): stderr is
    the error line alone."""
    status, out, err = refused_after_lightning_spoke[case, package]
    assert status == 2 and err.count("\n") == 1 and err.startswith("error: "), err
    # Lightning's INFO lines went to stdout, beside the plain twin's prints
    assert "Seed set to 42" in out


def test_a_nan_validation_loss_stops_every_twin_before_any_checkpoint(mnist_dir, tmp_path,
                                                                      capsys):
    """A val_loss that turns nan after the last training step is handled as a nan train_loss:
    stop, keep, never save."""
    records = {}
    # one step an epoch at lr 1e30: that step's loss is finite, the weights after it are not
    for package in PACKAGES:
        with pytest.raises(SystemExit) as exit_info, as_a_command():
            twin(package, "cnn_classifier").main([
                "--data-dir", str(mnist_dir), "--limit-train", "64", "--limit-val", "64",
                "--epochs", "2", "--lr", "1e30", "--checkpoint-dir", "ck", "--no-progress",
                "--metrics-out", f"{package}.json"])
        err = capsys.readouterr().err
        assert exit_info.value.code == 1
        assert err == ("error: val_loss is nan at step 1: training diverged, so it stopped there; "
                       "lower --lr (it was 1e+30)\n"), err
        records[package] = json.loads((tmp_path / f"{package}.json").read_text())
    # neither best.ckpt nor last.ckpt holds the nan model
    assert not list(tmp_path.glob("ck/**/*.ckpt"))
    plain, fabric, lightning = records.values()
    assert len(plain["train_loss"]) == 1
    assert plain["train_loss"] == fabric["train_loss"] == lightning["train_loss"]
    assert plain["val_loss"] == fabric["val_loss"] == lightning["val_loss"] == []


@pytest.mark.parametrize("package", PACKAGES)
def test_paths_mean_the_same_in_every_twin(package, tmp_path, monkeypatch):
    """~ and $VAR are expanded by every twin alike, so each writes where it says it writes."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LOGS", str(tmp_path / "logs"))
    flags = ["--num-samples", "50", "--epochs", "1", "--no-progress", "--accelerator", "cpu"]
    twin(package, "sum_dataset").main(flags + ["--log-dir", "$LOGS/a"])
    twin(package, "sum_dataset").main(flags + ["--log-dir", "~/b"])
    name = FOLDER[package]
    assert (tmp_path / f"logs/a/sum_dataset/{name}/version_0").is_dir()
    assert (tmp_path / f"home/b/sum_dataset/{name}/version_0").is_dir()
    # no folder named "$LOGS" or "~"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["home", "logs"]


def bad_paths(tmp_path: Path) -> list[tuple[list[str], str]]:
    """Output paths that cannot work, each with words of the one line that refuses it."""
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "old.ckpt").write_bytes(b"not really")
    return [
        (["--log-dir", ""], "--log-dir: an empty path"),
        (["--log-dir", "memory://runs"], "is a URL"),
        (["--log-dir", str(tmp_path / ("x" * 300))], "File name too long"),
        (["--log-dir", str(tmp_path / "dangling")], "is a symlink to nothing"),
        (["--checkpoint-dir", str(tmp_path / "loop")], "Too many levels of symbolic links"),
        (["--metrics-out", str(tmp_path / "fifo")], "is not a regular file (a pipe, a device)"),
        (["--metrics-out", "old.ckpt", "--resume", "old.ckpt"], "is the --resume path"),
        (["--metrics-out", "runs"], "is the --log-dir path"),
        (["--metrics-out", str(tmp_path)], "is a folder"),
    ]


@pytest.mark.parametrize("package", PACKAGES)
def test_a_path_that_cannot_work_is_refused_in_one_line_before_training(package, tmp_path,
                                                                        monkeypatch, capsys):
    """An empty path, a URL, a name too long, a symlink to nothing or in a loop, a pipe as
    --metrics-out, an output that is an input (--metrics-out over the --resume file, or the log
    folder): one line, status 2, nothing run."""

    monkeypatch.chdir(tmp_path)
    for flags, words in bad_paths(tmp_path):
        with pytest.raises(SystemExit) as exit_info, as_a_command():
            twin(package, "cnn_classifier").main(flags + ["--no-progress", "--limit-train", "10"])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and err.count("\n") == 1 and words in err, (flags, err)
    assert not (tmp_path / "runs").exists()


@pytest.fixture(scope="module")
def not_utf8_refusals(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """Each twin of step 3 given a --log-dir whose name is not UTF-8, the three at once."""
    def refused(package: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", f"{package}.sum_dataset", "--log-dir",
                               b"runs-\xff", "--epochs", "1"],
                              cwd=tmp_path_factory.mktemp("utf8"), capture_output=True,
                              timeout=600)

    return dict(zip(PACKAGES, at_once(refused, PACKAGES)))


@pytest.mark.parametrize("package", PACKAGES)
def test_a_folder_name_that_is_not_utf8_is_refused_in_one_line(package, not_utf8_refusals):
    """A name the terminal cannot print would end in a UnicodeEncodeError when the run says where
    it writes."""
    done = not_utf8_refusals[package]
    assert done.returncode == 2 and done.stderr.count(b"\n") == 1
    assert b"is not valid UTF-8" in done.stderr


@pytest.fixture(scope="module")
def piped_into_head(tmp_path_factory) -> dict[str, tuple[int, str]]:
    """Each twin of step 3 for 50 epochs, its output read as `| head -1` reads it, the three at
    once: package -> (exit status, stderr)."""
    def headed(package: str) -> tuple[int, str]:
        process = subprocess.Popen([sys.executable, "-m", f"{package}.sum_dataset", "--epochs",
                                    "50", "--no-progress"],
                                   cwd=tmp_path_factory.mktemp("head"), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE)
        process.stdout.readline()
        process.stdout.close()  # what head does after its first line
        err = process.communicate(timeout=600)[1].decode()
        return process.returncode, err

    return dict(zip(PACKAGES, at_once(headed, PACKAGES)))


@pytest.mark.slow
@pytest.mark.parametrize("package", PACKAGES)
def test_output_piped_into_head_ends_in_one_line(package, piped_into_head):
    """`... | head -1`: head stops reading; the run stops with one line on stderr and status 1,
    no BrokenPipeError."""
    status, err = piped_into_head[package]
    assert status == 1 and err.count("\n") == 1, err[-2000:]
    assert "the output was closed" in err, err[-2000:]


@pytest.mark.parametrize("package", PACKAGES)
def test_a_full_disk_during_a_save_keeps_the_previous_checkpoint_and_leaves_no_temporary_file(
        package, mnist_dir, tmp_path, monkeypatch, capsys):
    """The third save (epoch 1) fails halfway, as on a full disk: one line, status 1, last.ckpt
    still epoch 0."""
    import shared.checkpoint_files

    monkeypatch.chdir(tmp_path)
    real_save, saves = torch.save, []

    def fills_the_disk(obj, path):
        saves.append(path)
        if len(saves) < 3:  # epoch 0: best.ckpt and last.ckpt
            return real_save(obj, path)
        Path(path).write_bytes(b"half a checkpoint")
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 1024 vs 512")

    monkeypatch.setattr(shared.checkpoint_files.torch, "save", fills_the_disk)
    with pytest.raises(SystemExit) as exit_info, as_a_command():
        twin(package, "cnn_classifier").main(["--data-dir", str(mnist_dir), "--limit-train", "64",
                                              "--limit-val", "32",
                                              "--epochs", "3", "--checkpoint-dir", "ck",
                                              "--no-progress"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and err.count("\n") == 1, err
    assert "cannot write the checkpoint" in err, err
    folder = tmp_path / f"ck/cnn_classifier/{FOLDER[package]}/version_0"
    assert load_checkpoint_unchecked(folder / "last.ckpt")["epoch"] == 0
    # no .part file left
    assert sorted(path.name for path in folder.iterdir()) == ["best.ckpt", "last.ckpt"]


@pytest.mark.slow
@pytest.mark.parametrize("package", PACKAGES)
def test_a_save_killed_on_another_filesystem_keeps_last_ckpt_whole_and_tmpdir_empty(package,
                                                                                    mnist_dir,
                                                                                    tmp_path):
    """Checkpoints on /dev/shm (a tmpfs), $TMPDIR on disk: SIGKILL at three moments of a run that
    saves 2 files a step.

    Lightning's own save wrote into $TMPDIR and then copied across filesystems, which a kill
    could cut short (a truncated last.ckpt, the previous one gone). Written beside the target and
    renamed, it is always whole."""
    shm = Path("/dev/shm")
    on_another_filesystem = shm.is_dir() and os.stat(shm).st_dev != os.stat(tmp_path).st_dev
    assert on_another_filesystem, "needs /dev/shm on another filesystem"
    temporary = tmp_path / "tmpdir"
    temporary.mkdir()
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", TMPDIR=str(temporary),
               **ONE_THREAD)
    folders = [shm / f"side-by-side-test-{os.getpid()}-{package}-{attempt}" for attempt in range(3)]

    def killed(folder: Path, delay: float) -> None:
        """A run into `folder`, killed `delay` seconds into epoch 1."""
        process = subprocess.Popen([sys.executable, "-m", f"{package}.cnn_classifier",
                                    "--data-dir", str(mnist_dir), "--limit-train", "64",
                                    "--batch-size", "64", "--limit-val", "16", "--epochs", "500",
                                    "--checkpoint-dir", str(folder), "--no-progress",
                                    "--lr-step-gamma", "1"],
                                   cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        for line in process.stdout:
            # last.ckpt of epoch 0 is there; now it is rewritten every step
            if line.startswith("epoch 1:"):
                break
        time.sleep(delay)
        process.kill()
        process.communicate(timeout=600)

    try:
        with ThreadPoolExecutor(max_workers=3) as pool:  # the three moments, in three runs at once
            list(pool.map(killed, folders, (0.3, 0.9, 1.8)))
        for folder in folders:
            last = next(folder.glob(f"cnn_classifier/{FOLDER[package]}/version_0/last.ckpt"))
            assert load_checkpoint_unchecked(last)["epoch"] >= 1  # whole, and loads
        assert list(temporary.iterdir()) == []  # nothing written in $TMPDIR
    finally:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("package", PACKAGES)
def test_distributed_flags_that_no_launcher_can_serve_are_refused_in_one_line(package, tmp_path,
                                                                              monkeypatch, capsys):
    """--num-nodes 2 with no launcher would wait forever for a machine; a launcher's count other
    than --devices fails."""

    monkeypatch.chdir(tmp_path)
    for env, flags, words in [({}, ["--num-nodes", "2"],
                               "2 machines need a launcher on each of them"),
                              ({"WORLD_SIZE": "2"}, ["--devices", "3"],
                               "the launcher started 2 processes")]:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        with pytest.raises(SystemExit) as exit_info, as_a_command():
            twin(package, "cnn_classifier").main(flags)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and err.count("\n") == 1 and words in err, err


def test_the_fault_table_names_only_tests_that_exist_and_every_fault_test():
    """docs/reliability.md's tables of faults cannot drift: every test they name exists, and
    every test of the fault files (test_nothing_lost.py, test_tools_behave.py) has its row."""
    import re

    text = (REPO / "docs/reliability.md").read_text()
    section = text[text.index("## Each fault, each twin, each tool"):text.index("## Bad input")]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "`test_" in line]
    named = {name for row in rows for name in re.findall(r"`(test_\w+)`", row.split("|")[-2])}
    defined = {path.name: set(re.findall(r"^def (test_\w+)", path.read_text(), re.MULTILINE))
               for path in (REPO / "tests").glob("test_*.py")}
    every_test = set().union(*defined.values())
    assert named - every_test == set()  # no row names a test that is not there
    fault_tests = defined["test_nothing_lost.py"] | defined["test_tools_behave.py"]
    assert fault_tests - named == set()  # no fault test without its row
    twin_rows = [row for row in rows if row.count("|") == 6]  # fault, plain, Fabric, Lightning
    assert all(all(cell.strip() for cell in row.split("|")[1:-1]) for row in twin_rows)


def test_sigterm_keeps_ctrl_cs_handler_while_a_trainer_runs(tmp_path, monkeypatch):
    """Lightning's Trainer replaces SIGTERM's handler as it starts (its own logs the signal and,
    under DDP, broadcasts it from inside the handler, which can hang two processes); the Lightning
    twins' RecordMetrics gives it back Ctrl-C's, from the sanity check to the last step."""
    import lightning as L

    from shared.lightning_callbacks import RecordMetrics
    from shared.run_end import in_one_line
    from shared.run_record import RunRecord

    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(2, 2)

        def training_step(self, batch, batch_idx):
            loss = self.layer(batch[0]).sum()
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch, batch_idx):
            self.log_dict({"val_loss": 0.0, "val_accuracy": 0.0})

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    class Look(L.Callback):  # which handler SIGTERM has at each moment
        def __init__(self):
            self.seen = []

        def on_validation_batch_start(self, *args):
            self.seen.append(type(signal.getsignal(signal.SIGTERM)).__name__)

        on_train_batch_start = on_validation_batch_start

    monkeypatch.chdir(tmp_path)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(4, 2)),
                                       batch_size=2)
    looks = {}
    for name, callbacks in (("alone", []),
                            ("with RecordMetrics", [RecordMetrics(RunRecord("x", "y", {}))])):
        look = Look()
        with in_one_line():
            L.Trainer(max_steps=2, callbacks=[*callbacks, look], logger=False,
                      enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False).fit(Tiny(), data, data)
        looks[name] = look.seen
    assert looks["alone"] and set(looks["alone"]) == {"_HandlersCompose"}  # the Trainer's own
    # the sanity check's 2 batches, 2 steps, a validation of 2 batches
    assert looks["with RecordMetrics"] == ["_Interrupted"] * 6
