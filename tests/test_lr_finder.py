"""by_hand/lr_finder.py against Lightning's own `Tuner(trainer).lr_find(...)`.

Each test builds the same model twice from the same seed, runs Lightning's search and the
hand-written one on the same data, and asserts exact equality: the learning rates, the
smoothed losses, the suggestion, and what each leaves behind (weights, gradients, the
optimizer, the global random generator). 600 samples in batches of 32 give 15 training
batches per epoch, so a 40-step search crosses two epoch boundaries and validates twice.
"""

import logging
import warnings

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.tuner import Tuner
from lightning.pytorch.tuner.lr_finder import _ExponentialLR, _LinearLR, _LRFinder
from torch import nn
from torch.utils.data import DataLoader

from by_hand.lr_finder import LRFinderResult, lr_range_test, scheduled_lr
from lightning_version.sum_dataset import LitSumMLP
from shared.data import make_sum_dataset
from shared.models import SumMLP

NUM_FEATURES, HIDDEN_SIZE, LR, BATCH_SIZE = 8, 32, 1e-3, 32
# 480 train, 120 val
TRAIN_SET, VAL_SET, _, _ = make_sum_dataset(num_samples=600, num_features=NUM_FEATURES, seed=0)


class LitDropoutSumMLP(LitSumMLP):
    """LitSumMLP with dropout in front, so every training step draws from the global generator."""

    def __init__(self, num_features: int, hidden_size: int, lr: float) -> None:
        super().__init__(TRAIN_SET, VAL_SET, num_features, hidden_size, lr, BATCH_SIZE)
        self.model = nn.Sequential(nn.Dropout(0.2), self.model)


class LitSumMLPWithoutValidation(LitSumMLP):
    """LitSumMLP with its val_dataloader hook taken away: Lightning then has no validation to run.
    """

    val_dataloader = L.LightningModule.val_dataloader  # the unimplemented default: "not overridden"


def training_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    features, labels = batch  # CPU tensors already: nothing to move
    return F.binary_cross_entropy_with_logits(model(features), labels)


def loaders(with_val: bool) -> tuple[DataLoader, DataLoader | None]:
    # draws a seed each epoch
    train_loader = DataLoader(TRAIN_SET, batch_size=BATCH_SIZE, shuffle=True)
    return train_loader, DataLoader(VAL_SET, batch_size=BATCH_SIZE) if with_val else None


def lightning_search(tmp_path, dropout: bool = False, with_val: bool = True, max_epochs: int = 5,
                     **search):
    """Lightning's lr_find from seed 0; returns the module, its trainer, the finder and the RNG
    state after."""
    torch.manual_seed(0)
    if dropout:
        lit_model = LitDropoutSumMLP(NUM_FEATURES, HIDDEN_SIZE, LR)
    # without validation, no val_dataloader hook either: lr_find would ask it (it sets
    # limit_val_batches)
    else:
        lit_class = LitSumMLP if with_val else LitSumMLPWithoutValidation
        # loaders passed below
        lit_model = lit_class(TRAIN_SET, VAL_SET, NUM_FEATURES, HIDDEN_SIZE, LR, BATCH_SIZE)
    rng_before = torch.get_rng_state()
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=max_epochs, logger=False,
                        enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path)
    train_loader, val_loader = loaders(with_val)
    with warnings.catch_warnings():
        # "does not have many workers": true, and beside the point here
        warnings.simplefilter("ignore")
        lr_finder = Tuner(trainer).lr_find(lit_model, train_dataloaders=train_loader,
                                           val_dataloaders=val_loader,
                                           early_stop_threshold=4.0, **search)
    # lr_find runs under isolate_rng(): it hands back every draw
    assert torch.equal(torch.get_rng_state(), rng_before)
    return lit_model, trainer, lr_finder, torch.get_rng_state()


def plain_search(dropout: bool = False, with_val: bool = True, max_epochs: int = 5, **search):
    """The hand-written search from seed 0; returns the model, its optimizer, the result and the
    RNG state after."""
    torch.manual_seed(0)
    model = SumMLP(NUM_FEATURES, HIDDEN_SIZE)
    if dropout:
        model = nn.Sequential(nn.Dropout(0.2), model)
    # what LitSumMLP.configure_optimizers builds
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    train_loader, val_loader = loaders(with_val)
    result = lr_range_test(model, train_loader, optimizer, training_loss, val_loader=val_loader,
                           max_epochs=max_epochs, early_stop_threshold=4.0, **search)
    return model, optimizer, result, torch.get_rng_state()


def assert_same_search(tmp_path, **kwargs) -> LRFinderResult:
    """Run both searches and assert that every series, the suggestion and every side effect are
    equal."""
    lit_model, trainer, lr_finder, lightning_rng = lightning_search(tmp_path, **kwargs)
    model, optimizer, result, plain_rng = plain_search(**kwargs)

    assert result.lrs == lr_finder.results["lr"]
    assert result.losses == lr_finder.results["loss"]
    assert result.suggestion() == lr_finder.suggestion()
    assert lit_model.lr == result.suggestion()  # update_attr=True wrote it into the module
    # Weights restored from the checkpoint; gradients left from the last step (None if validation
    # freed them).
    for lit_param, param in zip(lit_model.model.parameters(), model.parameters(), strict=True):
        assert torch.equal(lit_param, param)
        assert (lit_param.grad is None and param.grad is None) or torch.equal(lit_param.grad,
                                                                              param.grad)
    # Lightning's optimizer: restored (no Adam moments), then given the suggested lr, like ours.
    assert optimizer.state_dict() == trainer.optimizers[0].state_dict()
    assert torch.equal(plain_rng, lightning_rng)
    # Lightning removed its temporary checkpoint
    assert list(tmp_path.glob(".lr_find_*.ckpt")) == []
    return result


def test_exponential_search_matches_lightning(tmp_path):
    """An exponential search across two epoch boundaries, validating at each, equals Lightning's
    bit for bit."""
    result = assert_same_search(tmp_path, min_lr=1e-5, max_lr=1.0, num_training=40,
                                mode="exponential")
    assert len(result.lrs) == 40  # ran to the end: no early stop


def test_linear_search_matches_lightning(tmp_path):
    """A linear search equals Lightning's bit for bit."""
    result = assert_same_search(tmp_path, min_lr=1e-4, max_lr=0.1, num_training=40, mode="linear")
    assert len(result.lrs) == 40


def test_early_stop_matches_lightning(tmp_path):
    """A diverging search stops at the same step as Lightning's, with the same series and
    suggestion."""
    result = assert_same_search(tmp_path, min_lr=1e-5, max_lr=1000.0, num_training=100)
    assert len(result.lrs) < 100  # the loss diverged and the search stopped early
    assert result.losses[-1] > 4.0 * min(result.losses)


def test_without_validation_matches_lightning(tmp_path):
    """Without a validation loader (no validation draws), the search still equals Lightning's."""
    assert_same_search(tmp_path, with_val=False, min_lr=1e-5, max_lr=1.0, num_training=40)


def test_max_epochs_caps_search_like_lightning(tmp_path):
    """Trainer(max_epochs=1) ends a 40-step search after one 15-batch epoch, in both."""
    result = assert_same_search(tmp_path, max_epochs=1, min_lr=1e-5, max_lr=1.0, num_training=40)
    assert len(result.lrs) == len(TRAIN_SET) // BATCH_SIZE == 15


def test_dropout_search_matches_lightning(tmp_path):
    """With dropout drawing from the global generator at every step, the search still equals
    Lightning's."""
    assert_same_search(tmp_path, dropout=True, min_lr=1e-5, max_lr=1.0, num_training=40)


def test_schedule_matches_lightning_schedulers():
    """scheduled_lr gives Lightning's scheduler lrs step for step, starting at min_lr and
    skipping r=1/N."""
    for mode, scheduler_class in (("exponential", _ExponentialLR), ("linear", _LinearLR)):
        optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1e-6)
        optimizer.param_groups[0]["initial_lr"] = 1e-6  # as _exchange_scheduler sets it
        scheduler = scheduler_class(optimizer, 3.0, 50)
        lightning_lrs = []
        for _ in range(50):
            lightning_lrs.append(scheduler.lr[0])  # what _LRCallback records before each batch
            optimizer.step()
            scheduler.step()
        assert [scheduled_lr(step, 1e-6, 3.0, 50, mode) for step in range(50)] == lightning_lrs
        assert lightning_lrs[0] == 1e-6


@pytest.mark.parametrize("skip_begin, skip_end", [(10, 1), (0, 1), (5, 3), (10, 0), (28, 1),
                                                  (29, 1)])
def test_suggestion_matches_lightning_with_nans_and_few_points(skip_begin, skip_end):
    """suggestion() drops non-finite losses and gives None below 2 points exactly where Lightning
    does."""
    generator = torch.Generator().manual_seed(0)
    lrs = [scheduled_lr(step, 1e-5, 1.0, 30, "exponential") for step in range(30)]
    losses = (1.0 + torch.rand(30, generator=generator, dtype=torch.float64)).tolist()
    losses[12], losses[20], losses[27] = float("nan"), float("inf"), float("nan")
    lightning = _LRFinder("exponential", 1e-5, 1.0, 30)
    lightning.results = {"lr": lrs, "loss": losses}
    logging.disable(logging.ERROR)  # Lightning logs an error when it cannot suggest
    try:
        expected = lightning.suggestion(skip_begin, skip_end)
    finally:
        logging.disable(logging.NOTSET)
    assert LRFinderResult(lrs, losses).suggestion(skip_begin, skip_end) == expected
    # empty slice, one finite point, no point
    if (skip_begin, skip_end) in ((10, 0), (28, 1), (29, 1)):
        assert expected is None


def test_suggestion_rounds_to_float32_like_lightning():
    """On a straight-line loss all gradients tie; ours breaks the tie by float32 rounding, as
    Lightning does."""
    lrs = [scheduled_lr(step, 1e-5, 1.0, 30, "exponential") for step in range(30)]
    losses = [1.0 - 0.5 * lr for lr in lrs]  # d(loss)/d(lr) = -0.5 everywhere
    lightning = _LRFinder("exponential", 1e-5, 1.0, 30)
    lightning.results = {"lr": lrs, "loss": losses}
    result = LRFinderResult(lrs, losses)
    assert result.suggestion() == lightning.suggestion()
    assert result.suggestion_index() == lightning._optimal_idx
    # np.gradient in float64 breaks the tie elsewhere: the dtype is part of the rule.
    float64_index = 10 + int(np.argmin(np.gradient(np.array(losses[10:-1]), np.array(lrs[10:-1]))))
    assert float64_index != lightning._optimal_idx


def test_plot_writes_png(tmp_path):
    """plot() saves a PNG file of loss against lr."""
    lrs = [scheduled_lr(step, 1e-5, 1.0, 30, "exponential") for step in range(30)]
    losses = [1.0 / (1.0 + step) for step in range(30)]
    path = tmp_path / "lr_find.png"
    LRFinderResult(lrs, losses).plot(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
