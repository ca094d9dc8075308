"""Every Lightning feature the repository teaches, held against its hand-written twin.

Each test runs the plain twin and the Lightning twin with one feature switched on and
asserts the two agree exactly; where a feature could silently do nothing, the test also
checks that it changed the run. The sum dataset keeps these fast; the last tests switch
several features on at once in the two MNIST examples.
"""

import math

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from plain_pytorch.by_hand.checkpointing import load_checkpoint, network_weights
from shared.models import SumMLP
from tests.conftest import twin

SUM = ["--num-samples", "500", "--epochs", "3", "--batch-size", "48", "--accelerator", "cpu", "--no-progress"]
BATCHES = math.ceil(400 / 48)  # 9 batches per epoch, the last one short


def run_both(example: str, argv: list[str]):
    return twin("plain_pytorch", example).main(argv), twin("lightning_version", example).main(argv)


def assert_same_run(plain, lightning) -> None:
    assert plain.train_loss and plain.val_loss  # a run really happened
    assert plain.train_loss == lightning.train_loss
    assert plain.val_loss == lightning.val_loss
    assert plain.val_accuracy == lightning.val_accuracy
    assert plain.test == lightning.test and plain.predictions == lightning.predictions


@pytest.fixture(scope="module")
def sum_baseline():
    """The plain sum run with no feature on, to show that each feature changes something."""
    return twin("plain_pytorch", "sum_dataset").main(SUM)


def scalars(folder) -> dict:
    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_tensorboard_event_files_match(tmp_path):
    """SummaryWriter and TensorBoardLogger write the same tags, steps and values (here with accumulation)."""
    plain, lightning = run_both("sum_dataset", SUM + ["--log-dir", "tb", "--accumulate-grad-batches", "2"])
    plain_events, lightning_events = scalars(tmp_path / "tb/sum_dataset/plain"), scalars(tmp_path / "tb/sum_dataset/lightning")
    assert sorted(plain_events) == ["epoch", "train_loss", "val_accuracy", "val_loss"]
    assert plain_events == lightning_events
    assert len(plain_events["train_loss"]) == 3 * math.ceil(BATCHES / 2)  # one point per optimizer step
    assert [v for _, v in plain_events["val_loss"]] == plain.val_loss  # float32 values, stored exactly


def test_progress_bar_renders_and_can_be_turned_off(capsys):
    """Both twins draw an "Epoch 0" bar (tqdm: stderr, Lightning's: stdout); with --no-progress neither does."""
    argv = [a for a in SUM if a != "--no-progress"] + ["--epochs", "1"]
    for package in ("plain_pytorch", "lightning_version"):
        twin(package, "sum_dataset").main(argv)
        assert "Epoch 0: 100%" in "".join(capsys.readouterr())
        twin(package, "sum_dataset").main(argv + ["--no-progress"])
        printed = "".join(capsys.readouterr())
        assert "Epoch 0" not in printed and "%|" not in printed


def test_resumed_run_continues_the_uninterrupted_curve(tmp_path):
    """Stop after 2 of 4 epochs, resume from last.ckpt: epochs 3-4 match the uninterrupted run, in both twins."""
    argv = SUM + ["--lr-step-gamma", "0.5", "--early-stopping-patience", "3"]
    full = run_both("sum_dataset", argv + ["--epochs", "4", "--checkpoint-dir", "full"])
    run_both("sum_dataset", argv + ["--epochs", "2", "--checkpoint-dir", "part"])
    for record, package, folder in zip(full, ("plain_pytorch", "lightning_version"), ("plain", "lightning")):
        resumed = twin(package, "sum_dataset").main(argv + ["--epochs", "4", "--resume", f"part/sum_dataset/{folder}/last.ckpt"])
        assert resumed.train_loss == record.train_loss[2 * BATCHES :]
        assert resumed.val_loss == record.val_loss[2:]
    assert_same_run(*full)


def test_checkpoint_weights_load_into_either_twin(tmp_path):
    """Both twins' best and last checkpoints hold the same weights, under different key prefixes."""
    run_both("sum_dataset", SUM + ["--checkpoint-dir", "ckpt"])
    for name in ("best.ckpt", "last.ckpt"):
        plain = load_checkpoint(tmp_path / "ckpt/sum_dataset/plain" / name)
        lightning = load_checkpoint(tmp_path / "ckpt/sum_dataset/lightning" / name)
        assert plain["epoch"] == lightning["epoch"] and plain["global_step"] == lightning["global_step"]
        assert list(lightning["state_dict"]) == ["model." + key for key in plain["model"]]  # the "model." prefix
        plain_weights, lightning_weights = network_weights(plain), network_weights(lightning)
        assert all(torch.equal(plain_weights[k], lightning_weights[k]) for k in plain_weights)
    # Cross-load: the plain twin's file into the Lightning twin's model, and Lightning's into the plain model.
    from lightning_version.sum_dataset import LitSumMLP

    lightning_model, plain_model = LitSumMLP(32, 256, 1e-3), SumMLP(32, 256)
    lightning_model.model.load_state_dict(network_weights(load_checkpoint(tmp_path / "ckpt/sum_dataset/plain/last.ckpt")))
    plain_model.load_state_dict(network_weights(load_checkpoint(tmp_path / "ckpt/sum_dataset/lightning/last.ckpt")))
    assert all(torch.equal(a, b) for a, b in zip(lightning_model.model.state_dict().values(), plain_model.state_dict().values()))


def test_a_saved_model_predicts_alone_and_rebuilds_from_hyperparameters(tmp_path):
    """load_from_checkpoint and the plain checkpoint's hyperparameters rebuild a model that predicts as the run did."""
    plain, lightning = run_both("sum_dataset", SUM + ["--checkpoint-dir", "ckpt", "--predict", "25"])
    assert plain.predictions == lightning.predictions and len(plain.predictions) == 25
    from lightning_version.sum_dataset import LitSumMLP
    from shared.data import make_sum_dataset

    test_features = make_sum_dataset(500, 32, seed=42).test.tensors[0][:25]
    rebuilt = LitSumMLP.load_from_checkpoint(tmp_path / "ckpt/sum_dataset/lightning/last.ckpt", map_location="cpu").model
    checkpoint = load_checkpoint(tmp_path / "ckpt/sum_dataset/plain/last.ckpt")
    hparams = checkpoint["hyper_parameters"]
    alone = SumMLP(hparams["num_features"], hparams["hidden_size"])  # no Lightning, no training code
    alone.load_state_dict(network_weights(checkpoint))
    for model in (rebuilt.eval(), alone.eval()):
        with torch.no_grad():
            assert (model(test_features) > 0).long().tolist() == plain.predictions


def test_early_stopping_stops_both_twins_after_the_same_epoch():
    """With patience 1 and min_delta 0.05, both twins stop at the same epoch, before max_epochs."""
    plain, lightning = run_both("sum_dataset", SUM + ["--epochs", "10", "--early-stopping-patience", "1",
                                                      "--early-stopping-min-delta", "0.05"])
    assert_same_run(plain, lightning)
    assert 1 < len(plain.val_loss) < 10


def test_parity_holds_with_two_worker_processes(sum_baseline):
    """seed_everything(workers=True) + deterministic vs seeding by hand + worker_init_fn: same curve as 0 workers."""
    plain, lightning = run_both("sum_dataset", SUM + ["--num-workers", "2", "--deterministic"])
    assert_same_run(plain, lightning)
    assert plain.train_loss == sum_baseline.train_loss  # workers change where batches are built, not what they hold


@pytest.mark.parametrize("algorithm, value", [("norm", "0.05"), ("value", "0.001")])
def test_gradient_clipping_matches(algorithm, value, sum_baseline):
    """clip_grad_norm_/clip_grad_value_ at the point Lightning clips give the same curve."""
    plain, lightning = run_both("sum_dataset", SUM + ["--gradient-clip-val", value, "--gradient-clip-algorithm", algorithm])
    assert_same_run(plain, lightning)
    assert plain.train_loss != sum_baseline.train_loss


def test_bf16_mixed_precision_matches_on_cpu(sum_baseline):
    """torch.autocast(bfloat16) where Lightning puts it gives the same bf16 curve."""
    plain, lightning = run_both("sum_dataset", SUM + ["--precision", "bf16-mixed"])
    assert_same_run(plain, lightning)
    assert plain.train_loss != sum_baseline.train_loss


def test_gradient_accumulation_matches_with_a_short_last_window(sum_baseline):
    """Windows of 4 over 9 batches (4, 4, 1): the short window still steps, as in Lightning."""
    plain, lightning = run_both("sum_dataset", SUM + ["--accumulate-grad-batches", "4"])
    assert_same_run(plain, lightning)
    assert len(plain.train_loss) == 3 * BATCHES and plain.train_loss[0] == sum_baseline.train_loss[0]
    assert plain.train_loss[1:] != sum_baseline.train_loss[1:]


def test_step_lr_scheduler_matches(sum_baseline):
    """StepLR stepped after each epoch, where Lightning steps it, gives the same curve."""
    plain, lightning = run_both("sum_dataset", SUM + ["--lr-step-gamma", "0.3"])
    assert_same_run(plain, lightning)
    assert plain.train_loss[:BATCHES] == sum_baseline.train_loss[:BATCHES]  # epoch 1 runs at the initial lr
    assert plain.train_loss[BATCHES:] != sum_baseline.train_loss[BATCHES:]


def test_test_split_and_predictions_match():
    """trainer.test and trainer.predict vs evaluate() and plain inference: same accuracy, same labels."""
    plain, lightning = run_both("sum_dataset", SUM + ["--test", "--predict", "30"])
    assert_same_run(plain, lightning)
    assert set(plain.test) == {"test_loss", "test_accuracy"} and len(plain.predictions) == 30


@pytest.mark.parametrize("example", ["mnist_feedforward", "cnn_classifier"])
def test_mnist_examples_take_the_same_features(example, mnist_dir, tmp_path):
    """The MNIST twins agree with clipping, bf16, accumulation, a scheduler, early stopping, test and predict on."""
    argv = ["--data-dir", str(mnist_dir), "--limit-train", "300", "--limit-val", "100", "--epochs", "3",
            "--batch-size", "32", "--accelerator", "cpu", "--no-progress", "--gradient-clip-val", "1.0",
            "--precision", "bf16-mixed", "--accumulate-grad-batches", "3", "--lr-step-gamma", "0.7",
            "--early-stopping-patience", "2", "--test", "--predict", "10", "--checkpoint-dir", "ckpt"]
    plain, lightning = run_both(example, argv)
    assert_same_run(plain, lightning)
    assert len(plain.train_loss) == 3 * math.ceil(300 / 32) and len(plain.predictions) == 10
    assert scalars(tmp_path / f"runs/{example}/plain") == scalars(tmp_path / f"runs/{example}/lightning")


def test_lr_finder_flag_suggests_the_same_lr_and_trains_identically(tmp_path, capsys):
    """--find-lr: both twins print the same suggestion, save a PNG, and then train bit-identically with it."""
    argv = ["--num-samples", "1000", "--epochs", "2", "--batch-size", "64", "--accelerator", "cpu", "--no-progress",
            "--find-lr", "--lr-step-gamma", "0.7", "--checkpoint-dir", "ckpt"]
    plain, lightning = run_both("sum_dataset", argv)
    assert_same_run(plain, lightning)
    suggestions = [line for line in capsys.readouterr().out.splitlines() if line.startswith("lr finder suggests")]
    assert len(suggestions) == 2 and suggestions[0] == suggestions[1]
    suggested = float(suggestions[0].split()[-1])
    assert suggested != 1e-3  # the run did not just keep --lr
    for folder in ("plain", "lightning"):
        assert (tmp_path / f"runs/sum_dataset/{folder}/lr_find.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert load_checkpoint(tmp_path / "ckpt/sum_dataset/plain/last.ckpt")["hyper_parameters"]["lr"] == suggested
    assert load_checkpoint(tmp_path / "ckpt/sum_dataset/lightning/last.ckpt")["hyper_parameters"]["lr"] == suggested


def test_lr_finder_flag_with_dropout_matches(mnist_dir):
    """--find-lr on the CNN: the search draws dropout masks and shuffles, and both twins hand them back alike."""
    argv = ["--data-dir", str(mnist_dir), "--limit-train", "640", "--limit-val", "64", "--epochs", "2",
            "--batch-size", "32", "--accelerator", "cpu", "--no-progress", "--find-lr"]
    assert_same_run(*run_both("cnn_classifier", argv))


@pytest.mark.parametrize("mode", ["power", "binsearch"])
def test_batch_size_finder_flag_chooses_the_same_size_and_trains_identically(mode, capsys):
    """--find-batch-size: both twins choose the same batch size and then train, test and predict bit-identically."""
    argv = ["--num-samples", "1000", "--epochs", "2", "--batch-size", "16", "--accelerator", "cpu", "--no-progress",
            "--find-batch-size", mode, "--test", "--predict", "5"]
    plain, lightning = run_both("sum_dataset", argv)
    assert_same_run(plain, lightning)
    chosen = [line for line in capsys.readouterr().out.splitlines() if line.startswith("batch-size finder chose")]
    # On CPU nothing runs out of memory: the search grows until the batch holds all 800 training samples.
    assert chosen == [f"batch-size finder chose {1024 if mode == 'power' else 972}"] * 2
    assert len(plain.train_loss) == 2  # one batch per epoch at that size


def test_seed_worker_draws_what_lightnings_worker_init_draws():
    """shared.seeding.seed_worker reseeds workers exactly as seed_everything(workers=True) does."""
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
        return torch.cat(list(DataLoader(Draws(), batch_size=2, num_workers=2, worker_init_fn=worker_init_fn)))

    by_hand, lightning = draws(seed_worker), draws(partial(pl_worker_init_function, rank=0))
    assert torch.equal(by_hand, lightning)
    assert not torch.equal(by_hand, draws(None))  # torch's default seeding differs: the test can tell


def test_resume_keeps_the_saved_patience_and_a_new_folder_starts_its_own_best(tmp_path):
    """Resumed with another patience and into another folder, both twins behave as Lightning does."""
    argv = SUM + ["--early-stopping-min-delta", "0.05"]
    run_both("sum_dataset", argv + ["--epochs", "2", "--early-stopping-patience", "5", "--checkpoint-dir", "part"])
    records = []
    for package, folder in (("plain_pytorch", "plain"), ("lightning_version", "lightning")):
        records.append(twin(package, "sum_dataset").main(argv + [
            "--epochs", "8", "--early-stopping-patience", "1", "--checkpoint-dir", "new",
            "--resume", f"part/sum_dataset/{folder}/last.ckpt"]))
        assert (tmp_path / f"new/sum_dataset/{folder}/best.ckpt").is_file()
    assert_same_run(*records)
