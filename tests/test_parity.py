"""The heart of the repository: the three twins of each step give the same run, bit for bit.

Every test runs the plain loop, the Fabric loop and the Lightning Trainer on the same flags and
asserts exact equality (`==`) of the per-step training losses and the per-epoch validation loss
and accuracy. The flags use 3 epochs, validation every epoch, and batch sizes that do not divide
the data, so the last batch of every epoch is short."""

import math

import pytest
import torch
from torch.utils.data import DataLoader

from tests.conftest import EXAMPLES, run_all, twin


def assert_same_run(plain, fabric, lightning, steps: int, epochs: int) -> None:
    assert len(plain.train_loss) == steps and len(plain.val_loss) == epochs  # a run really happened
    assert plain.train_loss == fabric.train_loss == lightning.train_loss
    assert plain.val_loss == fabric.val_loss == lightning.val_loss
    assert plain.val_accuracy == fabric.val_accuracy == lightning.val_accuracy


def test_mnist_feedforward_twins_match(mnist_dir):
    """The MLP twins agree on 600 real MNIST images, batch 64 (600 = 9 * 64 + 24), 3 epochs."""
    argv = ["--data-dir", str(mnist_dir), "--limit-train", "600", "--limit-val", "250"]
    plain, fabric, lightning = run_all("mnist_feedforward",
                                       argv + ["--epochs", "3", "--batch-size", "64",
                                                                   "--accelerator", "cpu"])
    assert_same_run(plain, fabric, lightning, steps=3 * math.ceil(600 / 64), epochs=3)


@pytest.mark.slow  # 550 steps each way: the quick parity run (README) leaves it out
def test_mnist_feedforward_twins_match_on_the_full_fashion_mnist_training_split(fashion_dir):
    """At full size: one epoch over Fashion-MNIST's whole training split (55,000 train, 5,000
    validate), bit for bit."""
    argv = ["--dataset", "fashion-mnist", "--data-dir", str(fashion_dir), "--epochs", "1",
            "--accelerator", "cpu",
            "--no-progress"]
    plain, fabric, lightning = run_all("mnist_feedforward", argv)
    assert_same_run(plain, fabric, lightning, steps=55_000 // 100, epochs=1)
    assert plain.val_accuracy[0] > 0.8  # it learns the clothes too


def test_cnn_classifier_twins_match_with_dropout(mnist_dir):
    """The CNN twins agree with dropout drawing random masks at every step, 3 epochs, batch 50 of
    330."""
    argv = ["--data-dir", str(mnist_dir), "--limit-train", "330", "--limit-val", "120",
            "--accelerator", "cpu"]
    plain, fabric, lightning = run_all("cnn_classifier",
                                       argv + ["--epochs", "3", "--batch-size", "50"])
    assert_same_run(plain, fabric, lightning, steps=3 * math.ceil(330 / 50), epochs=3)


def test_sum_dataset_twins_match():
    """The sum-dataset twins agree over 4 epochs on 1,000 generated vectors, batch 48."""
    argv = ["--num-samples", "1000", "--epochs", "4", "--batch-size", "48", "--accelerator", "cpu"]
    plain, fabric, lightning = run_all("sum_dataset", argv)
    assert_same_run(plain, fabric, lightning, steps=4 * math.ceil(800 / 48), epochs=4)
    assert plain.val_accuracy[-1] > 0.8  # and it learns: the rule is easy for an MLP


def test_tiny_gpt_twins_match_step_by_step():
    """The GPT twins agree on 8 steps (warmup 3, then the cosine), evaluated every 4 steps: each
    loss, evaluation, step's rate and the sampled text (tests/test_tiny_gpt.py: the rest)."""
    argv = ["--max-steps", "8", "--warmup-steps", "3", "--eval-interval", "4", "--eval-batches",
            "2", "--batch-size", "8", "--context", "32", "--sample-length", "40",
            "--accelerator", "cpu", "--no-progress"]
    plain, fabric, lightning = run_all("tiny_gpt", argv)
    assert_same_run(plain, fabric, lightning, steps=8, epochs=2)  # two evaluations
    assert len(plain.learning_rate) == 8 and len(plain.sample) == 40
    assert plain.learning_rate == fabric.learning_rate == lightning.learning_rate
    assert plain.sample == fabric.sample == lightning.sample


def test_the_comparison_can_fail():
    """A different seed gives a different curve, so the equalities above are not vacuous."""
    argv = ["--num-samples", "200", "--epochs", "1", "--accelerator", "cpu"]
    first = twin("plain_pytorch", "sum_dataset").main(argv + ["--seed", "1"])
    second = twin("lightning_version", "sum_dataset").main(argv + ["--seed", "2"])
    assert first.train_loss != second.train_loss


def test_skipping_validation_would_break_parity(mnist_dir, monkeypatch):
    """The CNN twins part ways after epoch 1 if the plain loop stops iterating its validation
    loader.

    This is the trap of "Why the curves match", point 2, made to bite: the parity tests above
    would catch a plain loop that validated less often than Lightning.
    """
    argv = ["--data-dir", str(mnist_dir), "--limit-train", "200", "--limit-val", "50", "--epochs",
            "2",
            "--batch-size", "50", "--accelerator", "cpu", "--no-progress"]
    lightning = twin("lightning_version", "cnn_classifier").main(argv)
    plain_module = twin("plain_pytorch", "cnn_classifier")
    # no iter() over val_loader
    monkeypatch.setattr(plain_module, "evaluate", lambda *args: (0.0, 0.0))
    plain = plain_module.main(argv)
    assert plain.train_loss[:4] == lightning.train_loss[:4]  # epoch 1: the same
    # epoch 2: other shuffle, other dropout masks
    assert plain.train_loss[4:] != lightning.train_loss[4:]


def test_every_dataloader_iter_draws_from_the_global_generator():
    """The trap the twins must respect: even an unshuffled loader moves the global RNG on iter().

    Lightning iterates the validation loader every epoch, so the plain twin must too, at the
    same point, or the dropout masks of the next epoch differ.
    """
    torch.manual_seed(0)
    untouched = torch.rand(1)
    torch.manual_seed(0)
    iter(DataLoader(list(range(4))))  # no shuffle, no workers
    assert torch.rand(1) != untouched


@pytest.mark.parametrize("example", EXAMPLES)
def test_dry_run_is_one_batch_each_way(example, request):
    """`--dry-run` (Lightning's fast_dev_run) trains and validates one batch, alike in all three
    (step 2: tests, predicts)."""
    data = ["--data-dir",
            str(request.getfixturevalue("mnist_dir"))] if example != "sum_dataset" else []
    step_2 = ["--test", "--predict", "40", "--checkpoint-dir",
              "ckpt"] if example == "cnn_classifier" else []
    argv = data + step_2 + ["--dry-run", "--accelerator", "cpu", "--batch-size", "16"]
    plain, fabric, lightning = run_all(example, argv)
    for record in (plain, fabric, lightning):
        assert len(record.train_loss) == 1 and len(record.val_loss) == 1
    for other in (fabric, lightning):
        assert plain.train_loss == other.train_loss and plain.val_loss == other.val_loss
        assert plain.val_accuracy == other.val_accuracy and plain.test == other.test
        assert plain.predictions == other.predictions
    if example == "cnn_classifier":
        assert len(plain.predictions) == 16 and set(plain.test) == {"test_loss", "test_accuracy"}
