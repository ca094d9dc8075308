"""Step 2 on two processes: DDP by hand under torchrun ⟷ Fabric(strategy="ddp") ⟷
Trainer(strategy="ddp"), on CPU (gloo).

Each of the three twins trains on 2 processes, in its own processes, the way README's "Scaling out"
launches it. One thread per process (OMP_NUM_THREADS=1, what torchrun sets anyway), so that
both twins compute with the same kernels.
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
import torch.nn.functional as F
from torch.utils.data import DataLoader, DistributedSampler

from by_hand.checkpointing import load_checkpoint_unchecked, network_weights
from shared.data import first, load_mnist
from shared.models import ConvNet
from shared.run_end import INTERRUPTED
from tests.conftest import FOLDERS, PACKAGES, REPO, as_a_command, free_port, twin

# 301 validation images: 151 a process, so the sampler pads one (repeats the first image).
FLAGS = ["--limit-train", "512", "--limit-val", "301", "--batch-size", "32", "--accelerator", "cpu",
         "--no-progress"]
STEPS_PER_EPOCH = 512 // 2 // 32  # each process: half the images, in batches of 32
# The most a process may take to end once another of its run died (docs/scaling-out.md): it sees
# the death at its next all-reduce, then keeps what ran and exits. Generous for a loaded machine.
DEAD_PEER_SECONDS = 60


def start(package: str, devices: int, flags: list[str], cwd: Path) -> subprocess.Popen:
    """The plain twin under torchrun (one process per device); the Fabric and Lightning twins as
    usual (they start their own)."""
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    module = ["-m", f"{package}.cnn_classifier", "--devices", str(devices), *flags]
    if package == "plain_pytorch" and devices > 1:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc-per-node={devices}", *module]
    else:
        command = [sys.executable, *module]
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE,
                            text=True)


def finish(process: subprocess.Popen, status: int = 0) -> subprocess.CompletedProcess:
    """Wait for a run to end and check its exit status."""
    # The timeout only stops a hung run; it is not a speed test.
    out, err = process.communicate(timeout=600)
    assert process.returncode == status, out[-2000:] + err[-3000:]
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def finish_all(processes: list[subprocess.Popen],
               status: int = 0) -> list[subprocess.CompletedProcess]:
    """`finish` for runs started together, read all at once: a run blocked on a full output pipe
    would stall its peers."""
    with ThreadPoolExecutor(max_workers=len(processes)) as pool:
        return list(pool.map(lambda process: finish(process, status), processes))


def records(folder: Path) -> list[dict]:
    return [json.loads((folder / f"{package}.json").read_text()) for package in PACKAGES]


@pytest.fixture(scope="module")
def ddp_runs(mnist_dir, tmp_path_factory) -> Path:
    """The three twins, 2 epochs on 2 processes, with checkpoints and --metrics-out; the folder
    they ran in."""
    folder = tmp_path_factory.mktemp("ddp")
    started = [start(package, 2, [*FLAGS, "--data-dir", str(mnist_dir), "--epochs", "2",
                                  "--checkpoint-dir", "ck", "--metrics-out", f"{package}.json"],
                     folder)
               for package in PACKAGES]  # the three at once, each in its own processes
    for done in finish_all(started):
        assert done.stdout.count("epoch 0: val_loss") == 1  # only rank 0 speaks
    return folder


@pytest.mark.slow
def test_ddp_twins_give_the_same_losses_bit_for_bit(ddp_runs):
    """On 2 processes with dropout, over 2 epochs: rank 0's per-step losses and the reduced epoch
    metrics are equal."""
    plain, fabric, lightning = records(ddp_runs)
    assert len(plain["train_loss"]) == 2 * STEPS_PER_EPOCH
    for key in ("train_loss", "val_loss", "val_accuracy"):
        assert plain[key] == fabric[key] == lightning[key], key
    for name in FOLDERS.values():  # rank 0 alone wrote logs and checkpoints: one version each
        assert [p.name for p in (ddp_runs / "ck/cnn_classifier" / name).iterdir()] == ["version_0"]
        assert [p.name
                for p in (ddp_runs / "runs/cnn_classifier" / name).iterdir()] == ["version_0"]


@pytest.mark.slow
def test_ddp_matches_one_process_taking_the_whole_global_batch(ddp_runs, mnist_dir):
    """One process that takes both processes' batches at each step reaches the same losses, within a
    tolerance.

    A plain single-process run with batch 64 would not see the same dropout masks: each DDP
    process draws its masks from its own generator, seeded alike, so both halves of a global
    batch get the same masks. This reference replays that in one process: for each step it
    runs rank 0's half and rank 1's half from the same generator state, averages the two
    losses (DDP averages the two gradients) and takes one optimizer step.
    """
    train_set, val_set, _, _ = load_mnist(mnist_dir)
    train_set, val_set = first(train_set, 512), first(val_set, 301)
    halves = [DataLoader(train_set, batch_size=32, sampler=DistributedSampler(train_set, 2, rank,
                                                                              seed=42))
              for rank in (0, 1)]
    torch.manual_seed(42)
    model = ConvNet()
    torch.manual_seed(42)  # as Lightning reseeds each process when DDP starts
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    losses = []
    for epoch in range(2):
        for loader in halves:
            loader.sampler.set_epoch(epoch)
        state = torch.get_rng_state()
        # iter() draws from the generator: once, as each process does
        batches = [list(iter(halves[0]))]
        torch.set_rng_state(state)
        batches.append(list(iter(halves[1])))
        model.train()
        for (images_0, labels_0), (images_1, labels_1) in zip(*batches):
            state = torch.get_rng_state()
            # rank 0's half, with its dropout masks
            loss_0 = F.cross_entropy(model(images_0), labels_0)
            torch.set_rng_state(state)
            loss_1 = F.cross_entropy(model(images_1), labels_1)  # rank 1's: the same masks
            optimizer.zero_grad()
            ((loss_0 + loss_1) / 2).backward()
            optimizer.step()
            losses.append(loss_0.item())
        # validation's draw
        iter(DataLoader(val_set, sampler=DistributedSampler(val_set, 2, 0, shuffle=False)))
        scheduler.step()
    plain = records(ddp_runs)[0]
    largest = max(abs(a - b) for a, b in zip(losses, plain["train_loss"]))
    # Under DDP each process's gradient is halved and gloo's all-reduce sums the two, bucket by
    # bucket;
    # here autograd halves each half's gradient on its way back and accumulates the two into .grad.
    # The same sums, added in another order, can differ in the last bit, and the weights carry such
    # a
    # bit into later steps. Measured here: at most 2.4e-7, one float32 step at a loss of 2.3. 1e-5
    # allows about 40 such steps and still fails on any real difference (a wrong batch, mask or lr).
    assert len(losses) == len(plain["train_loss"]) and largest <= 1e-5, largest


@pytest.fixture(scope="module")
def resumed_on_one(ddp_runs, mnist_dir) -> Path:
    """Each twin's last.ckpt of `ddp_runs` (2 epochs on 2 processes) resumed for epoch 3 on 1
    process, the three twins at once, each writing its checkpoints (ck-1/) and --metrics-out; the
    folder."""
    started = []
    for package, name in FOLDERS.items():
        last = ddp_runs / f"ck/cnn_classifier/{name}/version_0/last.ckpt"
        assert load_checkpoint_unchecked(last)["epoch"] == 1
        started.append(start(package, 1, [*FLAGS, "--data-dir", str(mnist_dir), "--epochs", "3",
                                          "--resume", str(last), "--checkpoint-dir", "ck-1",
                                          "--log-dir", "runs-1", "--metrics-out",
                                          f"{package}-resumed.json"],
                             ddp_runs))
    finish_all(started)
    return ddp_runs


@pytest.mark.slow
def test_ddp_checkpoints_resume_on_one_process(resumed_on_one):
    """Each twin's last.ckpt written by 2 processes resumes in 1 process, and the twins go on alike.
    """
    plain, fabric, lightning = (json.loads((resumed_on_one / f"{p}-resumed.json").read_text())
                                for p in PACKAGES)
    assert len(plain["train_loss"]) == 512 // 32  # epoch 3 alone, all 512 images
    assert len(plain["val_loss"]) == 1
    assert plain["train_loss"] == fabric["train_loss"] == lightning["train_loss"]
    assert plain["val_loss"] == fabric["val_loss"] == lightning["val_loss"]


@pytest.mark.slow
def test_one_process_checkpoints_resume_on_two(resumed_on_one, mnist_dir):
    """Each twin's last.ckpt written by 1 process (epoch 3, resumed above) resumes on 2 processes
    for epoch 4, on one machine and on two, and the twins go on alike.

    The Fabric twin's trap: Fabric sets the DistributedSampler's epoch to the number of passes
    made in this run, from 0; without its seed shifted, the resumed epoch would repeat an earlier
    epoch's order.
    """
    started = []  # all at once, each in its own processes and folders
    for package, name in FOLDERS.items():
        last = resumed_on_one / f"ck-1/cnn_classifier/{name}/version_0/last.ckpt"
        assert load_checkpoint_unchecked(last)["epoch"] == 2
        flags = [*FLAGS, "--data-dir", str(mnist_dir), "--epochs", "4", "--resume", str(last)]
        started.append(start(package, 2, [*flags, "--log-dir", "runs-2", "--metrics-out",
                                          f"{package}-on-two.json"], resumed_on_one))
        # the same on two machines of one process each
        nodes = [resumed_on_one / f"{package}-node-{node}" for node in (0, 1)]
        for node in nodes:
            node.mkdir()
        started += start_on_two_nodes(package, [*flags, "--metrics-out", "on-two-nodes.json"],
                                      nodes)
    finish_all(started)
    runs = [json.loads((resumed_on_one / f"{package}-on-two.json").read_text())
            for package in PACKAGES]
    plain, fabric, lightning = runs
    assert len(plain["train_loss"]) == STEPS_PER_EPOCH  # epoch 4, on 2 processes
    assert len(plain["val_loss"]) == 1
    assert plain["train_loss"] == fabric["train_loss"] == lightning["train_loss"]
    assert plain["val_loss"] == fabric["val_loss"] == lightning["val_loss"]
    for package in PACKAGES:
        nodes = [resumed_on_one / f"{package}-node-{node}" for node in (0, 1)]
        writer = next(node for node in nodes if (node / "on-two-nodes.json").exists())
        on_two_nodes_run = json.loads((writer / "on-two-nodes.json").read_text())
        for key in ("train_loss", "val_loss", "val_accuracy"):
            assert on_two_nodes_run[key] == runs[0][key], (package, key)


def _check_one_diverged_loss(rank: int, store: str, outcomes: str) -> None:
    """In process `rank` of 2: rank 1's loss is nan, rank 0's is fine; write what
    stop_if_diverged did."""
    import torch.distributed as dist

    from shared.divergence import stop_if_diverged
    from shared.run_end import Diverged

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        stop_if_diverged(torch.tensor(float("nan") if rank == 1 else 2.3), step=3, lr=0.1)
        outcome = "trained on"
    except Diverged as error:
        outcome = str(error)
    Path(f"{outcomes}.{rank}").write_text(outcome)
    dist.destroy_process_group()


@pytest.mark.slow
def test_a_loss_that_diverges_in_one_process_stops_every_process(tmp_path):
    """Only rank 1's loss is nan: rank 0 stops at the same step too, instead of waiting in its
    next all-reduce."""
    torch.multiprocessing.spawn(_check_one_diverged_loss,
                                args=(str(tmp_path / "store"), str(tmp_path / "outcome")),
                                nprocs=2)
    rank_0, rank_1 = ((tmp_path / f"outcome.{rank}").read_text() for rank in (0, 1))
    assert rank_1.startswith("train_loss is nan at step 3:")
    assert rank_0.startswith("train_loss is not finite in another process at step 3:")


@pytest.mark.slow
def test_both_twins_on_two_processes_stop_at_the_same_step_when_the_loss_diverges(mnist_dir,
                                                                                  tmp_path):
    """At --lr 1e6 on 2 processes: every twin stops after the same step, with one error line
    each, records alike."""
    started = [start(package, 2, [*FLAGS, "--data-dir", str(mnist_dir), "--epochs", "2", "--lr",
                                  "1e6", "--metrics-out", f"{package}.json"], tmp_path)
               for package in PACKAGES]  # the three at once
    for done in finish_all(started, status=1):
        # one process says so (torchrun adds its own report)
        assert done.stderr.count("error: train_loss ") == 1
    plain, fabric, lightning = records(tmp_path)
    assert plain["train_loss"][-1] is None and len(plain["train_loss"]) < STEPS_PER_EPOCH
    assert plain["train_loss"] == fabric["train_loss"] == lightning["train_loss"]
    assert plain["val_loss"] == fabric["val_loss"] == lightning["val_loss"] == []


def test_the_plain_twin_without_torchrun_says_how_to_launch_it(capsys, monkeypatch):
    """--devices 2 run with plain `python`: one line naming the torchrun command, exit status 2."""
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(SystemExit) as exit_info, as_a_command():
        twin("plain_pytorch", "cnn_classifier").main(["--devices", "2", "--data-dir", "nowhere"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert "torchrun --standalone --nproc-per-node 2" in err


@pytest.mark.parametrize("package", PACKAGES)
def test_test_and_predict_stay_on_one_process(package, capsys):
    """--devices 2 with --test: refused in one line (DDP's sampler would count a few images
    twice)."""
    with pytest.raises(SystemExit) as exit_info, as_a_command():
        twin(package, "cnn_classifier").main(["--devices", "2", "--test"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "--devices 1" in err


# Lightning's launcher (`--devices 2` without torchrun) as the race meets it, made certain: the
# process it started stops first (exit status 1), and this one, rank 0, needs longer than the
# launcher's 5-second look to end (a slow disk under --metrics-out: here, 6 seconds of sleep).
RACE = """
import subprocess, sys, time
from lightning.fabric.strategies.launchers.subprocess_script import _launch_process_observer
from shared import run_end
from shared.run_end import BadInput, Diverged
child = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(1)"])
_launch_process_observer([child])  # what fabric.launch() and trainer.fit start beside rank 0
child.wait()
run_end.when_stopped(lambda: time.sleep(6) or print("the steps that ran are kept"))
run_end.when_refused(lambda: time.sleep(6) or print("the run's folders are removed"))
with run_end.in_one_line():
    raise {stop}
"""


STOPS = {  # each stop: the line rank 0 ends with, its exit status, what it says it kept
    "Diverged('train_loss is nan at step 3')": ("error: train_loss is nan", 1,
                                                "the steps that ran are kept"),
    "BadInput('no such file')": ("error: no such file", 2, "the run's folders are removed"),
    "KeyboardInterrupt": ("", 1, INTERRUPTED),
    "RuntimeError('Connection closed by peer [127.0.0.1]:29500')": (
        "error: another process of this run died", 1, "the steps that ran are kept")}


@pytest.fixture(scope="module", autouse=True)
def race_runs(request, tmp_path_factory) -> dict | None:
    """The four runs of the race test below, started as this module's first test begins when the
    session runs that test: they spend most of their time asleep (the launcher's look, a slow
    disk), so the module's other tests run meanwhile. Yields {stop: process}, or None."""
    test = "test_a_stop_on_any_process_ends_rank_0_in_its_own_words_even_when_another_exited_first"
    if not any(item.name == test for item in request.session.items):
        yield None
        return
    folder, env = tmp_path_factory.mktemp("race"), dict(os.environ, PYTHONPATH=str(REPO))
    started = {stop: subprocess.Popen([sys.executable, "-c", RACE.format(stop=stop)], env=env,
                                      cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True)
               for stop in STOPS}  # at once: the four wait out the launcher's look together
    yield started
    for process in started.values():
        if process.poll() is None:  # its test did not run to the end
            process.kill()
            process.communicate()


@pytest.mark.slow
def test_a_stop_on_any_process_ends_rank_0_in_its_own_words_even_when_another_exited_first(
        race_runs):
    """A nan loss, bad input, Ctrl-C or a dead peer, after the other process exited: rank 0 still
    keeps what ran and ends with its one line and status, never killed by Lightning's launcher
    (exit status -9), as the Fabric twin once was in the divergence test above."""
    for stop, (line, status, kept) in STOPS.items():
        out, err = race_runs[stop].communicate(timeout=600)  # only stops a hang
        assert race_runs[stop].returncode == status, (stop, race_runs[stop].returncode, err)
        assert err.startswith(line) and err.count("\n") == (1 if line else 0), (stop, err)
        assert kept in out, (stop, out)


# SIGTERM finds rank 0 in Python and rank 1 in an all-reduce that rank 0 will never join, as
# scancel once found the plain twin of step 2 (rank 1 in a gradient's all-reduce).
HELD_IN_A_COLLECTIVE = """
import argparse, os, signal, time
import torch, torch.distributed as dist
from by_hand import distributed
from shared import run_end
distributed.join_process_group(argparse.Namespace(devices=2, num_nodes=1, accelerator="cpu",
                                                  no_progress=True))
with run_end.in_one_line():
    if dist.get_rank() == 0:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(60)
    dist.all_reduce(torch.ones(3))
"""


@pytest.mark.slow
def test_sigterm_while_another_process_waits_in_a_collective_ends_both_at_once(tmp_path):
    """Rank 0 stopped by SIGTERM leaves the process group at once, instead of waiting at the
    exit barrier for rank 1, which waits in an all-reduce rank 0 will never join: both end
    within srun's and torchrun's 30 seconds from the signal to SIGKILL, rank 0 in its own words."""
    (tmp_path / "held.py").write_text(HELD_IN_A_COLLECTIVE)
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    launcher = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone",
                                 "--nproc-per-node=2", "held.py"], cwd=tmp_path, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = launcher.communicate(timeout=30)  # SLURM's KillWait
    except subprocess.TimeoutExpired:
        for rank in (0, 1):  # the held workers too, not only torchrun
            os.kill(worker(launcher, rank), signal.SIGKILL)
        launcher.kill()
        launcher.communicate()
        pytest.fail("still running 30 s after SIGTERM: a process waited for one held elsewhere")
    done = subprocess.CompletedProcess(launcher.args, launcher.returncode, out, err)
    assert done.returncode == 1, done.stderr[-3000:]
    assert done.stdout.count(INTERRUPTED) == 1, done.stdout + done.stderr[-3000:]
    assert "leaving DDP's process group" not in done.stderr


def torchrun(package: str, nproc: int, flags: list[str], cwd: Path,
             launcher: list[str] | None = None, env: dict | None = None) -> subprocess.Popen:
    """`torchrun LAUNCHER --nproc-per-node NPROC -m PACKAGE.cnn_classifier FLAGS`, for any twin
    (Fabric and Lightning then start no processes of their own); `env`: variables to add."""
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1",
               **(env or {}))
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run",
                             *(launcher or ["--standalone"]), f"--nproc-per-node={nproc}",
                             "-m", f"{package}.cnn_classifier", *flags],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def worker(launcher: subprocess.Popen, rank: int) -> int:
    """The process id of the worker with RANK=`rank` that `launcher` (torchrun) started."""
    for pid in Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children").read_text().split():
        if f"RANK={rank}".encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
            return int(pid)
    raise LookupError(f"no worker with RANK={rank}")


def wait_for(path: Path, process: subprocess.Popen) -> None:
    """Until `path` exists (checkpoints are saved whole, by a rename); fails if `process` ends."""
    while not path.exists():
        assert process.poll() is None, process.communicate()
        time.sleep(0.01)


# torchrun restarts the group by itself; each attempt with a rendezvous store of its own
# (docs/scaling-out.md, "When a worker dies": with the store shared, the restarted processes can
# read the dead attempt's addresses and fail to connect).
RESTART_ONCE = ["--standalone", "--max-restarts", "1"]
STORE_PER_ATTEMPT = {"TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}


@pytest.mark.slow
@pytest.mark.parametrize("package", PACKAGES)
def test_a_worker_killed_mid_epoch_ends_the_attempt_and_torchrun_restarts_it_from_last_ckpt(
        package, ddp_runs, mnist_dir, tmp_path):
    """SIGKILL rank 1 in epoch 1 under `torchrun --max-restarts 1`: rank 0 ends within seconds
    (not the collective's timeout), with one line; torchrun starts the group again, which takes
    the whole last.ckpt of epoch 0 by itself (`--resume auto`), and its losses equal an
    uninterrupted run's from epoch 1 on, bit for bit."""
    flags = [*FLAGS, "--data-dir", str(mnist_dir), "--epochs", "3", "--devices", "2",
             "--checkpoint-dir", "ck", "--resume", "auto", "--metrics-out", "again.json"]
    run = torchrun(package, 2, flags, tmp_path, RESTART_ONCE, STORE_PER_ATTEMPT)
    last = f"ck/cnn_classifier/{FOLDERS[package]}/version_0/last.ckpt"
    wait_for(tmp_path / last, run)
    rank_0 = worker(run, 0)
    os.kill(worker(run, 1), signal.SIGKILL)
    killed = time.monotonic()
    while Path(f"/proc/{rank_0}").exists() and b"State:\tZ" not in Path(
            f"/proc/{rank_0}/status").read_bytes():
        time.sleep(0.01)
    rank_0_ended = time.monotonic() - killed
    done = finish(run)  # the restarted attempt finished: status 0
    # Rank 0 said why it stopped (rank 1 said nothing: it was killed), unless torchrun's SIGTERM,
    # which follows the death, reached it first: then it said Lightning's words.
    said = done.stderr.count("error: another process of this run died") + done.stdout.count(
        INTERRUPTED)
    assert said == 1, done.stdout[-2000:] + done.stderr[-3000:]
    assert rank_0_ended < DEAD_PEER_SECONDS, rank_0_ended
    assert load_checkpoint_unchecked(tmp_path / last)["epoch"] == 0  # the restart wrote version_1
    assert f"--resume auto: {last}" in done.stdout  # the second attempt found it
    uninterrupted = records(ddp_runs)[PACKAGES.index(package)]
    resumed = json.loads((tmp_path / "again.json").read_text())  # the second attempt's record
    steps = STEPS_PER_EPOCH
    assert resumed["train_loss"][:steps] == uninterrupted["train_loss"][steps:]
    assert resumed["val_loss"][:1] == uninterrupted["val_loss"][1:]
    assert len(resumed["train_loss"]) == 2 * steps  # epochs 1 and 2


def start_on_two_nodes(package: str, flags: list[str], folders: list[Path]) -> list:
    """Two machines simulated here: a torchrun each (`--nnodes 2 --node-rank N`, one process),
    meeting at one c10d endpoint, each in its own folder (`folders`: a machine's disk), with
    `--num-nodes 2`. Returns the two torchruns, started; `finish` each."""
    port = free_port()
    return [torchrun(package, 1, [*flags, "--num-nodes", "2"], folder,
                     ["--nnodes", "2", f"--node-rank={node}", "--rdzv-backend", "c10d",
                      f"--rdzv-endpoint=127.0.0.1:{port}"])
            for node, folder in enumerate(folders)]


@pytest.fixture(scope="module")
def two_node_runs(mnist_dir, tmp_path_factory) -> Path:
    """Each twin as `ddp_runs` ran it (2 epochs, 2 processes), but on two simulated machines of
    one process each (LOCAL_RANK=0 on both); the folder holding, for each twin, node-0/ and
    node-1/ (each machine's own disk: its logs and --metrics-out) and shared/ (checkpoints)."""
    folder = tmp_path_factory.mktemp("two-nodes")
    started = {}  # the three twins at once: one thread a process, so each computes alike
    for package in PACKAGES:
        nodes = [folder / package / f"node-{node}" for node in (0, 1)]
        for node in nodes:
            node.mkdir(parents=True)
        (folder / package / "shared").mkdir()
        # the checkpoints on storage both machines share, as every process reads best.ckpt back
        started[package] = start_on_two_nodes(
            package, [*FLAGS, "--data-dir", str(mnist_dir), "--epochs", "2", "--checkpoint-dir",
                      str(folder / package / "shared"), "--metrics-out", "metrics.json"], nodes)
    for package, nodes in started.items():
        outs = [done.stdout for done in finish_all(nodes)]
        # One voice for the two machines; but `fabric.print` prints from the first process of
        # each machine (Fabric's documented choice), so the Fabric twin speaks once a machine.
        voices = 2 if package == "fabric_version" else 1
        assert "".join(outs).count("epoch 0: val_loss") == voices, outs
    return folder


@pytest.mark.slow
def test_two_machines_of_one_process_give_what_one_machine_of_two_gives(two_node_runs, ddp_runs):
    """The per-step losses, validation metrics and last.ckpt's weights of each twin on 2 nodes x
    1 process equal, `==`, those on 1 node x 2 processes (and so the three twins agree); so a
    checkpoint written by 2 machines resumes on 1 as the one-machine one does (tested above)."""
    for package, one_machine in zip(PACKAGES, records(ddp_runs)):
        writer = next(node for node in (two_node_runs / package).iterdir()
                      if (node / "metrics.json").exists())
        two_machines = json.loads((writer / "metrics.json").read_text())
        for key in ("train_loss", "val_loss", "val_accuracy"):
            assert two_machines[key] == one_machine[key], (package, key)
        name = f"cnn_classifier/{FOLDERS[package]}/version_0/last.ckpt"
        shared = two_node_runs / package / "shared"
        assert [path.name for path in (shared / "cnn_classifier" / FOLDERS[package]).iterdir()
                ] == ["version_0"]  # one writer
        assert load_checkpoint_unchecked(shared / name)["epoch"] == 1
        weights = network_weights(load_checkpoint_unchecked(shared / name))
        reference = network_weights(load_checkpoint_unchecked(ddp_runs / "ck" / name))
        assert weights.keys() == reference.keys()
        assert all(torch.equal(weights[key], reference[key]) for key in weights), package


@pytest.mark.slow
def test_two_machines_checkpoints_resume_on_one_process(two_node_runs, resumed_on_one, mnist_dir):
    """Each twin's last.ckpt written by two machines resumes on 1 process for epoch 3 with the
    losses of the one-machine checkpoint resumed so (`resumed_on_one`), `==`: the whole
    checkpoint goes on alike (momentum, scheduler, generators), not only the weights."""
    started = []
    for package, name in FOLDERS.items():
        last = two_node_runs / package / f"shared/cnn_classifier/{name}/version_0/last.ckpt"
        started.append(start(package, 1, [*FLAGS, "--data-dir", str(mnist_dir), "--epochs", "3",
                                          "--resume", str(last), "--log-dir", "runs-back",
                                          "--metrics-out", "back-on-one.json"],
                             two_node_runs / package))
    finish_all(started)
    for package in PACKAGES:
        back = json.loads((two_node_runs / package / "back-on-one.json").read_text())
        reference = json.loads((resumed_on_one / f"{package}-resumed.json").read_text())
        assert len(back["train_loss"]) == 512 // 32, package  # epoch 3, all 512 images
        for key in ("train_loss", "val_loss", "val_accuracy"):
            assert back[key] == reference[key], (package, key)


@pytest.mark.slow
def test_on_two_machines_one_process_alone_writes_and_it_is_global_rank_0(two_node_runs):
    """Logs and --metrics-out come from one machine's folder; the other machine's process,
    LOCAL_RANK=0 but global rank 1, leaves its folder empty (and one version_N of checkpoints
    is in the shared folder, above)."""
    for package in PACKAGES:
        written = {node.name: sorted(str(path.relative_to(node)) for path in node.rglob("*"))
                   for node in (two_node_runs / package).glob("node-*")}
        assert sorted(len(files) > 0 for files in written.values()) == [False, True], written


@pytest.fixture(scope="module")
def slurm(tmp_path_factory) -> dict:
    """A one-node SLURM cluster on this machine (.ci/slurm-localhost), for the module's tests;
    the environment that points srun at it. Skipped only where SLURM is not installed."""
    if not all(shutil.which(daemon) for daemon in ("slurmctld", "slurmd", "srun", "munged")):
        pytest.skip("SLURM is not installed here (Debian: apt-get install slurm-wlm munge), so "
                    "the srun runs are not tested; .ci/run installs it")
    folder = tmp_path_factory.mktemp("slurm")
    subprocess.run([REPO / ".ci/slurm-localhost", "start", folder], check=True, timeout=120)
    yield dict(os.environ, SLURM_CONF=str(folder / "slurm.conf"), PYTHONPATH=str(REPO),
               OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    subprocess.run([REPO / ".ci/slurm-localhost", "stop", folder], check=True, timeout=120)


def srun(package: str, flags: list[str], cwd: Path, env: dict, name: str) -> subprocess.Popen:
    """`srun --nodes=1 --ntasks-per-node=2 python -m PACKAGE.cnn_classifier --devices 2 FLAGS`
    (Lightning refuses --ntasks): SLURM starts both processes. `--oversubscribe`: the three
    twins' jobs run at once on this one node's CPUs, instead of waiting for one another."""
    return subprocess.Popen(["srun", "--nodes=1", "--ntasks-per-node=2", "--oversubscribe",
                             f"--job-name={name}",
                             sys.executable, "-m", f"{package}.cnn_classifier", "--devices", "2",
                             *flags],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


@pytest.mark.slow
def test_srun_starts_every_twin_on_two_tasks_with_torchruns_results(slurm, ddp_runs, mnist_dir,
                                                                     tmp_path):
    """Under SLURM's srun (2 tasks), Lightning and Fabric read SLURM's variables and the plain
    twin reads them by hand; the per-step losses and validation equal, `==`, the runs started by
    torchrun and by Lightning's launcher."""
    started = [srun(package, [*FLAGS, "--data-dir", str(mnist_dir), "--epochs", "2",
                              "--metrics-out", f"{package}.json"], tmp_path, slurm, package)
               for package in PACKAGES]  # the three at once
    finish_all(started)
    for package, started_otherwise in zip(PACKAGES, records(ddp_runs)):
        by_srun = json.loads((tmp_path / f"{package}.json").read_text())
        for key in ("train_loss", "val_loss", "val_accuracy"):
            assert by_srun[key] == started_otherwise[key], (package, key)


@pytest.mark.slow
def test_scancel_ends_every_twin_as_sigterm_does_keeping_what_ran(slurm, mnist_dir, tmp_path):
    """scancel sends SIGTERM to every task: each twin stops as on Ctrl-C (one line, status 1,
    the steps that ran in --metrics-out), and last.ckpt holds the last whole epoch."""
    for package in PACKAGES:
        name = f"scancel-{package}"
        run = srun(package, [*FLAGS, "--data-dir", str(mnist_dir), "--epochs", "50",
                             "--checkpoint-dir", "ck", "--metrics-out", f"{package}.json"],
                   tmp_path, slurm, name)
        wait_for(tmp_path / f"ck/cnn_classifier/{FOLDERS[package]}/version_0/last.ckpt", run)
        subprocess.run(["scancel", f"--name={name}"], env=slurm, check=True, timeout=60)
        out, err = run.communicate(timeout=600)  # only stops a hang
        assert out.count(INTERRUPTED) == 1, out[-2000:] + err[-2000:]
        kept = json.loads((tmp_path / f"{package}.json").read_text())
        last = load_checkpoint_unchecked(
            tmp_path / f"ck/cnn_classifier/{FOLDERS[package]}/version_0/last.ckpt")
        assert STEPS_PER_EPOCH <= len(kept["train_loss"]) < 50 * STEPS_PER_EPOCH
        # every epoch that finished was saved, but one whose save the signal came before
        assert last["epoch"] + 1 <= len(kept["val_loss"]) <= last["epoch"] + 2
