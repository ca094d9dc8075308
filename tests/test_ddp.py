"""Step 2 on two processes: DDP by hand under torchrun ⟷ Fabric(strategy="ddp") ⟷
Trainer(strategy="ddp"), on CPU (gloo).

Each of the three twins trains on 2 processes, in its own processes, the way README's "Scaling out"
launches it. One thread per process (OMP_NUM_THREADS=1, what torchrun sets anyway), so that
both twins compute with the same kernels.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, DistributedSampler

from by_hand.checkpointing import load_checkpoint_unchecked
from shared.data import first, load_mnist
from shared.models import ConvNet
from tests.conftest import FOLDERS, PACKAGES, REPO, as_a_command, twin

# 301 validation images: 151 a process, so the sampler pads one (repeats the first image).
FLAGS = ["--limit-train", "512", "--limit-val", "301", "--batch-size", "32", "--accelerator", "cpu",
         "--no-progress"]
STEPS_PER_EPOCH = 512 // 2 // 32  # each process: half the images, in batches of 32


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


def launch(package: str, devices: int, flags: list[str], cwd: Path,
           status: int = 0) -> subprocess.CompletedProcess:
    """One twin's run, from start to end."""
    return finish(start(package, devices, flags, cwd), status)


def records(folder: Path) -> list[dict]:
    return [json.loads((folder / f"{package}.json").read_text()) for package in PACKAGES]


@pytest.fixture(scope="module")
def ddp_runs(mnist_dir, tmp_path_factory) -> Path:
    """The three twins, 2 epochs on 2 processes, with checkpoints and --metrics-out; the folder
    they ran in."""
    folder = tmp_path_factory.mktemp("ddp")
    for package in PACKAGES:
        done = launch(package, 2, [*FLAGS, "--data-dir", str(mnist_dir), "--epochs", "2",
                                   "--checkpoint-dir", "ck",
                                   "--metrics-out", f"{package}.json"], folder)
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
    for process in started:
        finish(process)
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
    for epoch 4, and the twins go on alike.

    The Fabric twin's trap: Fabric sets the DistributedSampler's epoch to the number of passes
    made in this run, from 0; without its seed shifted, the resumed epoch would repeat an earlier
    epoch's order.
    """
    runs = []
    for package, name in FOLDERS.items():
        last = resumed_on_one / f"ck-1/cnn_classifier/{name}/version_0/last.ckpt"
        assert load_checkpoint_unchecked(last)["epoch"] == 2
        launch(package, 2, [*FLAGS, "--data-dir", str(mnist_dir), "--epochs", "4", "--resume",
                            str(last),
                            "--log-dir", "runs-2", "--metrics-out", f"{package}-on-two.json"],
                            resumed_on_one)
        runs.append(json.loads((resumed_on_one / f"{package}-on-two.json").read_text()))
    plain, fabric, lightning = runs
    assert len(plain["train_loss"]) == STEPS_PER_EPOCH  # epoch 4, on 2 processes
    assert len(plain["val_loss"]) == 1
    assert plain["train_loss"] == fabric["train_loss"] == lightning["train_loss"]
    assert plain["val_loss"] == fabric["val_loss"] == lightning["val_loss"]


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
    runs = []
    for package in PACKAGES:
        done = launch(package, 2, [*FLAGS, "--data-dir", str(mnist_dir), "--epochs", "2", "--lr",
                                   "1e6",
                                   "--metrics-out", f"{package}.json"], tmp_path, status=1)
        # one process says so (torchrun adds its own report)
        assert done.stderr.count("error: train_loss ") == 1
        runs.append(json.loads((tmp_path / f"{package}.json").read_text()))
    plain, fabric, lightning = runs
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
