"""Every Lightning feature the ladder teaches, held against its hand-written twin and its Fabric
twin.

Each test runs the plain, Fabric and Lightning twins of the step that teaches the feature
and asserts the three agree exactly; where a feature could silently do nothing, the test
also checks that it changed the run. Step 1 (mnist_feedforward): TensorBoard, the progress
bar. Step 2 (cnn_classifier): the scheduler, checkpoints and resume, test and predict.
Step 3 (sum_dataset, fast): seeding and workers, early stopping, the finders, clipping,
mixed precision, accumulation. The dry run is in tests/test_parity.py.
"""

import math
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from by_hand.checkpointing import load_checkpoint_unchecked, network_weights
from shared.models import ConvNet
from tests.conftest import FOLDERS, PACKAGES, run_all, twin

SUM = ["--num-samples", "500", "--epochs", "3", "--batch-size", "48", "--accelerator", "cpu",
       "--no-progress"]
BATCHES = math.ceil(400 / 48)  # 9 batches per epoch, the last one short
CNN_BATCHES = math.ceil(200 / 48)  # 5 batches per epoch on --limit-train 200, the last one short


def assert_same_run(plain, *others) -> None:
    assert plain.train_loss and plain.val_loss  # a run really happened
    for other in others:
        assert plain.train_loss == other.train_loss
        assert plain.val_loss == other.val_loss
        assert plain.val_accuracy == other.val_accuracy
        assert plain.test == other.test and plain.predictions == other.predictions


def cnn_flags(mnist_dir, epochs: int = 3) -> list[str]:
    return ["--data-dir", str(mnist_dir), "--limit-train", "200", "--limit-val", "60", "--epochs",
            str(epochs),
            "--batch-size", "48", "--accelerator", "cpu", "--no-progress"]


def scalars(folder) -> dict:
    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)]
            for tag in events.Tags()["scalars"]}


@pytest.fixture(scope="module")
def sum_baseline():
    """The plain sum run with no feature on, to show that each feature changes something."""
    return twin("plain_pytorch", "sum_dataset").main(SUM)


# Step 1: mnist_feedforward ------------------------------------------------------------------

def test_tensorboard_event_files_match(mnist_dir, tmp_path):
    """Step 1: SummaryWriter, fabric.log_dict and self.log write the same tags, steps and values."""
    argv = ["--data-dir", str(mnist_dir), "--limit-train", "300", "--limit-val", "100", "--epochs",
            "2",
            "--batch-size", "64", "--accelerator", "cpu", "--no-progress", "--log-dir", "tb"]
    plain, _, _ = run_all("mnist_feedforward", argv)
    plain_events = scalars(tmp_path / "tb/mnist_feedforward/plain/version_0")
    assert sorted(plain_events) == ["epoch", "train_loss", "val_accuracy", "val_loss"]
    assert plain_events == scalars(tmp_path / "tb/mnist_feedforward/fabric/version_0")
    assert plain_events == scalars(tmp_path / "tb/mnist_feedforward/lightning/version_0")
    assert len(plain_events["train_loss"]) == 2 * math.ceil(300 / 64)  # one point per step
    # float32 values, stored exactly
    assert [v for _, v in plain_events["val_loss"]] == plain.val_loss


def test_progress_bar_renders_and_can_be_turned_off(mnist_dir, capsys):
    """Step 1: every twin draws an "Epoch 0" bar (tqdm: stderr, Lightning's: stdout); with
    --no-progress none does."""
    argv = ["--data-dir", str(mnist_dir), "--limit-train", "100", "--limit-val", "50", "--epochs",
            "1",
            "--accelerator", "cpu"]
    for package in PACKAGES:
        twin(package, "mnist_feedforward").main(argv)
        assert "Epoch 0: 100%" in "".join(capsys.readouterr())
        twin(package, "mnist_feedforward").main(argv + ["--no-progress"])
        printed = "".join(capsys.readouterr())
        assert "Epoch 0" not in printed and "%|" not in printed


def test_every_epoch_prints_the_same_validation_line(mnist_dir, capsys):
    """Step 1: after each epoch every twin prints one line with val_loss and val_accuracy, the
    same line."""
    argv = ["--data-dir", str(mnist_dir), "--limit-train", "100", "--limit-val", "50", "--epochs",
            "2",
            "--accelerator", "cpu", "--no-progress"]
    lines = []
    for package in PACKAGES:
        twin(package, "mnist_feedforward").main(argv)
        lines.append([line for line in capsys.readouterr().out.splitlines()
                      if line.startswith("epoch ")])
    assert lines[0] == lines[1] == lines[2] and len(lines[0]) == 2
    assert lines[0][1].startswith("epoch 1: val_loss ")


# Step 2: cnn_classifier ---------------------------------------------------------------------

def test_step_lr_scheduler_matches(mnist_dir):
    """Step 2: StepLR stepped after each epoch, where Lightning steps it, gives the same curve as
    Lightning's."""
    plain, fabric, lightning = run_all("cnn_classifier",
                                       cnn_flags(mnist_dir) + ["--lr-step-gamma", "0.1"])
    assert_same_run(plain, fabric, lightning)
    unscheduled = twin("plain_pytorch",
                       "cnn_classifier").main(cnn_flags(mnist_dir) + ["--lr-step-gamma", "1"])
    # epoch 1: the initial lr
    assert plain.train_loss[:CNN_BATCHES] == unscheduled.train_loss[:CNN_BATCHES]
    assert plain.train_loss[CNN_BATCHES:] != unscheduled.train_loss[CNN_BATCHES:]


def test_checkpoints_test_and_predict_match(mnist_dir, tmp_path):
    """Step 2: best and last checkpoints hold the same weights; test and predict use the best,
    alike; TensorBoard too."""
    records = run_all("cnn_classifier", cnn_flags(mnist_dir) + ["--checkpoint-dir", "ckpt",
                                                                "--test", "--predict", "12"])
    assert_same_run(*records)
    plain = records[0]
    assert set(plain.test) == {"test_loss", "test_accuracy"} and len(plain.predictions) == 12
    for name in ("best.ckpt", "last.ckpt"):
        plain_file, fabric_file, lightning_file = (
            load_checkpoint_unchecked(tmp_path / "ckpt/cnn_classifier" / folder / "version_0"
                                      / name)
            for folder in FOLDERS.values())
        assert plain_file["epoch"] == fabric_file["epoch"] == lightning_file["epoch"]
        assert (plain_file["global_step"] == fabric_file["global_step"]
                == lightning_file["global_step"])
        # the prefix
        assert list(lightning_file["state_dict"]) == ["model." + key for key in plain_file["model"]]
        assert list(fabric_file["model"]) == list(plain_file["model"])
        assert fabric_file["twin"] == "fabric"
        plain_weights = network_weights(plain_file)
        for other in (fabric_file, lightning_file):
            assert all(torch.equal(plain_weights[k], network_weights(other)[k])
                       for k in plain_weights)
    events = [scalars(tmp_path / "runs/cnn_classifier" / folder / "version_0")
              for folder in FOLDERS.values()]
    assert events[0] == events[1] == events[2] and "test_accuracy" in events[0]


def test_test_and_predict_use_the_best_model_rebuilt_from_its_file(mnist_dir, tmp_path):
    """Step 2: with checkpoints, test and predict run on best.ckpt's weights, not the last epoch's.
    """
    # a large lr: val_loss gets worse
    argv = cnn_flags(mnist_dir, epochs=4) + ["--lr", "0.3", "--test"]
    plain = twin("plain_pytorch", "cnn_classifier").main(argv + ["--checkpoint-dir", "ckpt"])
    in_memory = twin("plain_pytorch", "cnn_classifier").main(argv)
    best = load_checkpoint_unchecked(tmp_path / "ckpt/cnn_classifier/plain/version_0/best.ckpt")
    assert best["epoch"] < 3  # an earlier epoch was the best, so the two differ
    assert plain.test != in_memory.test
    others = [twin(package, "cnn_classifier").main(argv + ["--checkpoint-dir", "ckpt"])
              for package in PACKAGES[1:]]
    assert_same_run(plain, *others)


def test_resumed_run_continues_the_uninterrupted_curve(mnist_dir, tmp_path):
    """Step 2: stop after 2 of 4 epochs, resume from last.ckpt: epochs 3-4 match the
    uninterrupted run, in every twin."""
    full = run_all("cnn_classifier", cnn_flags(mnist_dir, epochs=4) + ["--checkpoint-dir", "full"])
    run_all("cnn_classifier", cnn_flags(mnist_dir, epochs=2) + ["--checkpoint-dir", "part"])
    for record, (package, folder) in zip(full, FOLDERS.items()):
        resumed = twin(package, "cnn_classifier").main(cnn_flags(mnist_dir, epochs=4) + [
            "--resume", f"part/cnn_classifier/{folder}/version_0/last.ckpt"])
        # dropout masks and lr continue
        assert resumed.train_loss == record.train_loss[2 * CNN_BATCHES :]
        assert resumed.val_loss == record.val_loss[2:]
    assert_same_run(*full)


def test_a_saved_model_predicts_alone_and_rebuilds_from_hyperparameters(mnist_dir, tmp_path):
    """Step 2: load_from_checkpoint and the plain and Fabric checkpoints rebuild a model that
    predicts as the run did."""
    plain, fabric, lightning = run_all("cnn_classifier",
                                       cnn_flags(mnist_dir) + ["--checkpoint-dir", "ckpt",
                                                                                "--predict", "25"])
    assert plain.predictions == fabric.predictions == lightning.predictions
    assert len(plain.predictions) == 25
    from lightning_version.cnn_classifier import LitConvNet
    from shared.data import load_mnist

    images = load_mnist(mnist_dir).test.tensors[0][:25]
    best = tmp_path / "ckpt/cnn_classifier/{}/version_0/best.ckpt"
    rebuilt = LitConvNet.load_from_checkpoint(str(best).format("lightning"), map_location="cpu")
    # save_hyperparameters()
    assert rebuilt.hparams.lr == 0.01 and rebuilt.hparams.lr_step_gamma == 0.7
    alone, from_fabric = ConvNet(), ConvNet()  # no Lightning, no training code
    alone.load_state_dict(network_weights(load_checkpoint_unchecked(str(best).format("plain"))))
    from_fabric.load_state_dict(network_weights(load_checkpoint_unchecked(str(best).format("fabric"))))
    for model in (rebuilt.model.eval(), alone.eval(), from_fabric.eval()):
        with torch.no_grad():
            assert model(images).argmax(dim=1).tolist() == plain.predictions


def test_resume_into_a_new_folder_starts_its_own_best(mnist_dir, tmp_path):
    """Step 2: resumed into another --checkpoint-dir, every twin starts a new best.ckpt there, as
    ModelCheckpoint does."""
    run_all("cnn_classifier", cnn_flags(mnist_dir, epochs=2) + ["--checkpoint-dir", "part"])
    records = []
    for package, folder in FOLDERS.items():
        records.append(twin(package, "cnn_classifier").main(cnn_flags(mnist_dir, epochs=3) + [
            "--checkpoint-dir", "new", "--resume",
            f"part/cnn_classifier/{folder}/version_0/last.ckpt"]))
        best = tmp_path / f"new/cnn_classifier/{folder}/version_0/best.ckpt"
        assert load_checkpoint_unchecked(best)["epoch"] == 2
    assert_same_run(*records)


def test_a_checkpoint_write_cut_off_midway_leaves_the_previous_last_ckpt_whole(tmp_path,
                                                                               monkeypatch):
    """Step 2: the plain twin writes beside last.ckpt and renames, as Lightning does; a write
    killed halfway loses nothing."""
    from by_hand import checkpointing

    checkpoints = checkpointing.Checkpoints(tmp_path)
    checkpoints.save({"epoch": 0, "weights": torch.ones(1000)}, val_loss=1.0)
    real_save = torch.save

    # what SIGKILL during torch.save leaves: half a file, then nothing more
    def killed_halfway(obj, path):
        real_save(obj, path)
        Path(path).write_bytes(Path(path).read_bytes()[:2000])
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpointing.torch, "save", killed_halfway)
    with pytest.raises(KeyboardInterrupt):
        # not better: only last.ckpt
        checkpoints.save({"epoch": 1, "weights": torch.zeros(1000)}, val_loss=2.0)
    monkeypatch.undo()
    # the previous one, whole and loadable
    assert load_checkpoint_unchecked(tmp_path / "last.ckpt")["epoch"] == 0


# Step 3: sum_dataset ------------------------------------------------------------------------

def test_early_stopping_stops_both_twins_after_the_same_epoch_and_says_why(capsys):
    """Step 3: with patience 1 and min_delta 0.05, every twin stops at the same epoch and prints
    the same reason."""
    plain, fabric, lightning = run_all("sum_dataset", SUM + ["--epochs", "10",
                                                             "--early-stopping-patience", "1",
                                                             "--early-stopping-min-delta", "0.05"])
    assert_same_run(plain, fabric, lightning)
    assert 1 < len(plain.val_loss) < 10
    said = [line for line in capsys.readouterr().out.splitlines()
            if line.startswith("early stopping after epoch")]
    assert len(said) == 3 and said[0] == said[1] == said[2]
    assert said[0].startswith(f"early stopping after epoch {len(plain.val_loss) - 1}: Monitored "
                              "metric val_loss did not improve in the last 1 records.")


def test_parity_holds_with_two_worker_processes(sum_baseline):
    """Step 3: seed_everything(workers=True) + deterministic vs seeding by hand + worker_init_fn:
    same curve as 0 workers."""
    plain, fabric, lightning = run_all("sum_dataset", SUM + ["--num-workers", "2",
                                                             "--deterministic"])
    assert_same_run(plain, fabric, lightning)
    # workers change where batches are built, not what they hold
    assert plain.train_loss == sum_baseline.train_loss


@pytest.mark.parametrize("algorithm, value", [("norm", "0.05"), ("value", "0.001")])
def test_gradient_clipping_matches(algorithm, value, sum_baseline):
    """Step 3: clip_grad_norm_/clip_grad_value_ at the point Lightning clips give the same curve."""
    plain, fabric, lightning = run_all("sum_dataset", SUM + ["--gradient-clip-val", value,
                                                             "--gradient-clip-algorithm",
                                                             algorithm])
    assert_same_run(plain, fabric, lightning)
    assert plain.train_loss != sum_baseline.train_loss


def test_bf16_mixed_precision_matches_on_cpu(sum_baseline):
    """Step 3: torch.autocast(bfloat16) where Lightning puts it gives the same bf16 curve."""
    plain, fabric, lightning = run_all("sum_dataset", SUM + ["--precision", "bf16-mixed"])
    assert_same_run(plain, fabric, lightning)
    assert plain.train_loss != sum_baseline.train_loss


def test_gradient_accumulation_matches_with_a_short_last_window(sum_baseline, tmp_path):
    """Step 3: windows of 4 over 9 batches (4, 4, 1): the short window still steps, as in
    Lightning; TensorBoard alike."""
    plain, fabric, lightning = run_all("sum_dataset", SUM + ["--accumulate-grad-batches", "4"])
    assert_same_run(plain, fabric, lightning)
    assert len(plain.train_loss) == 3 * BATCHES
    assert plain.train_loss[0] == sum_baseline.train_loss[0]
    assert plain.train_loss[1:] != sum_baseline.train_loss[1:]
    plain_events = scalars(tmp_path / "runs/sum_dataset/plain/version_0")
    assert plain_events == scalars(tmp_path / "runs/sum_dataset/fabric/version_0")
    assert plain_events == scalars(tmp_path / "runs/sum_dataset/lightning/version_0")
    # one point per optimizer step
    assert len(plain_events["train_loss"]) == 3 * math.ceil(BATCHES / 4)


def test_lr_finder_flag_suggests_the_same_lr_and_trains_identically(tmp_path, capsys):
    """Step 3: --find-lr: every twin prints the same suggestion, saves a PNG, and then trains
    bit-identically with it."""
    argv = ["--num-samples", "1000", "--epochs", "2", "--batch-size", "64", "--accelerator", "cpu",
            "--no-progress",
            "--find-lr"]
    plain, fabric, lightning = run_all("sum_dataset", argv)
    assert_same_run(plain, fabric, lightning)
    suggestions = [line for line in capsys.readouterr().out.splitlines()
                   if line.startswith("lr finder suggests")]
    assert len(suggestions) == 3 and suggestions[0] == suggestions[1] == suggestions[2]
    assert float(suggestions[0].split()[-1]) != 1e-3  # the run did not just keep --lr
    for folder in FOLDERS.values():
        picture = tmp_path / f"runs/sum_dataset/{folder}/version_0/lr_find.png"
        assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    baseline = twin("plain_pytorch", "sum_dataset").main(argv[:-1])
    assert plain.train_loss[0] == baseline.train_loss[0]
    assert plain.train_loss[1:] != baseline.train_loss[1:]


@pytest.mark.parametrize("mode", ["power", "binsearch"])
def test_batch_size_finder_flag_chooses_the_same_size_and_trains_identically(mode, capsys):
    """Step 3: --find-batch-size: every twin chooses the same batch size and then trains
    bit-identically."""
    argv = ["--num-samples", "1000", "--epochs", "2", "--batch-size", "16", "--accelerator", "cpu",
            "--no-progress",
            "--find-batch-size", mode]
    plain, fabric, lightning = run_all("sum_dataset", argv)
    assert_same_run(plain, fabric, lightning)
    chosen = [line for line in capsys.readouterr().out.splitlines()
              if line.startswith("batch-size finder chose")]
    # On CPU nothing runs out of memory: the search grows until the batch holds all 800 training
    # samples.
    assert chosen == [f"batch-size finder chose {1024 if mode == 'power' else 972}"] * 3
    assert len(plain.train_loss) == 2  # one batch per epoch at that size


def test_seed_worker_draws_what_lightnings_worker_init_draws():
    """Step 3: shared.seeding.seed_worker reseeds workers exactly as
    seed_everything(workers=True) does."""
    import random
    from functools import partial

    import numpy as np
    from lightning.fabric.utilities.seed import pl_worker_init_function
    from torch.utils.data import DataLoader, Dataset

    from shared.seeding import seed_worker

    class Draws(Dataset):  # each sample: one number from each of the worker's three generators
        def __len__(self):
            return 8

        def __getitem__(self, index):
            return torch.tensor([torch.rand(()).item(), random.random(), float(np.random.rand())])

    def draws(worker_init_fn):
        torch.manual_seed(0)
        return torch.cat(list(DataLoader(Draws(), batch_size=2, num_workers=2,
                                         worker_init_fn=worker_init_fn)))

    by_hand, lightning = draws(seed_worker), draws(partial(pl_worker_init_function, rank=0))
    assert torch.equal(by_hand, lightning)
    # torch's default seeding differs: the test can tell
    assert not torch.equal(by_hand, draws(None))
