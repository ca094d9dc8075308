"""The hand-written batch-size finder against Lightning's `Tuner.scale_batch_size`.

Both search the same model (same seed) on the same 1,000 training samples. Lightning's
trials are observed, not assumed: the LightningModule below notes the batch size of the
train loader each time the Trainer starts a trial (`on_train_start`), and marks the trial
failed when its `MemoryBudget` raises the simulated out-of-memory error.
"""

import gc

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.tuner import Tuner

from by_hand.batch_size_finder import BatchSizeSearch, MemoryBudget, scale_batch_size
from lightning_version.sum_dataset import LitSumMLP
from shared.data import make_sum_dataset
from shared.models import SumMLP
from shared.seeding import seed_everything

SEED, NUM_FEATURES, HIDDEN_SIZE, LR = 0, 32, 16, 1e-3
NUM_SAMPLES = 1_250  # 1,000 train, 250 validate
GIVE_UP_AFTER = 3  # the same size failing this many times in a row means Lightning is stuck


@pytest.fixture(autouse=True)
def cheap_garbage_collection():
    """Freeze the objects that exist already, so Lightning's gc.collect() before each trial skips
    them.

    Lightning calls gc.collect() (garbage_collection_cuda) before every trial; in a pytest
    process full of objects each call took 0.2 s, most of each test's time. It frees no GPU
    memory on CPU and draws no random numbers, so the search is the same, only faster.
    """
    gc.freeze()
    yield
    gc.unfreeze()


class SearchStuck(Exception):
    """Not a RuntimeError, so Lightning's search does not catch it: it ends the test run."""


class BudgetedLitSumMLP(LitSumMLP):
    """LitSumMLP on a pretend GPU: every step checks the batch against the budget first."""

    def __init__(self, budget: int | None, train_set, val_set, batch_size: int) -> None:
        super().__init__(train_set, val_set, num_features=NUM_FEATURES, hidden_size=HIDDEN_SIZE,
                         lr=LR,
                         batch_size=batch_size)
        self.budget = MemoryBudget(budget) if budget else None
        self.trials: list[tuple[int, bool]] = []  # as the search ran them, observed

    def on_train_start(self) -> None:  # Lightning's search calls fit_loop.run() once per trial
        recent = self.trials[-GIVE_UP_AFTER:]
        if len(recent) == GIVE_UP_AFTER and len(set(recent)) == 1 and not recent[0][1]:
            raise SearchStuck(f"batch size {recent[0][0]} failed {GIVE_UP_AFTER} times in a row")
        self.trials.append((self.trainer.train_dataloader.batch_size, True))

    def spend(self, batch) -> None:
        try:
            if self.budget is not None:
                self.budget.check(len(batch[0]))
        except RuntimeError:
            self.trials[-1] = (self.trials[-1][0], False)
            raise

    def training_step(self, batch, batch_idx):
        self.spend(batch)
        return super().training_step(batch, batch_idx)

    def validation_step(self, batch, batch_idx):
        self.spend(batch)
        return super().validation_step(batch, batch_idx)


def search_with_lightning(tmp_path, budget: int | None, mode: str, num_samples: int = NUM_SAMPLES,
                          max_epochs: int = 1, model_batch_size: int | None = None,
                          **search_args) -> dict:
    """Run Tuner.scale_batch_size; return what it found and what it left behind."""
    train_set, val_set, _, _ = make_sum_dataset(num_samples, NUM_FEATURES, SEED)
    L.seed_everything(SEED, verbose=False)
    # The model's loaders start at init_val: Lightning's first trial runs at their batch size.
    model = BudgetedLitSumMLP(budget, train_set, val_set,
                              model_batch_size or search_args.get("init_val", 2))
    weights_before = {name: tensor.clone() for name, tensor in model.model.state_dict().items()}
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=max_epochs, logger=False,
                        enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path)
    found = Tuner(trainer).scale_batch_size(model, mode=mode, **search_args)
    return {
        "search": BatchSizeSearch(trials=model.trials, batch_size=found),
        "model_batch_size": model.batch_size,
        "weights_before": weights_before,
        "weights_after": model.model.state_dict(),
        "rng_after": torch.get_rng_state(),
    }


def search_by_hand(budget: int | None, mode: str, num_samples: int = NUM_SAMPLES,
                   max_epochs: int = 1,
                   **search_args) -> dict:
    """Run the hand-written twin on the same data and the same initial weights."""
    train_set, val_set, _, _ = make_sum_dataset(num_samples, NUM_FEATURES, SEED)
    seed_everything(SEED)
    model = SumMLP(NUM_FEATURES, HIDDEN_SIZE)
    weights_before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    memory = MemoryBudget(budget) if budget else None

    def training_loss(model, batch):
        features, labels = batch
        if memory is not None:
            # the same check, before the forward pass, as the LightningModule's
            memory.check(len(features))
        return F.binary_cross_entropy_with_logits(model(features), labels)

    search = scale_batch_size(model, train_set, training_loss,
                              lambda model: torch.optim.Adam(model.parameters(), lr=LR),
                              val_set=val_set, mode=mode, max_epochs=max_epochs, **search_args)
    return {
        "search": search,
        "weights_before": weights_before,
        "weights_after": model.state_dict(),
        "rng_after": torch.get_rng_state(),
    }


CASES = {  # name: (budget, mode, arguments, the batch size Lightning returns)
    "power, no budget: stops once a batch holds all 1,000 samples": (None, "power", {}, 1024),
    "power, budget 100: the last size that fitted": (100, "power", {}, 64),
    "binsearch, no budget: 1024 less the 5% margin": (None, "binsearch", {}, 972),
    "binsearch, budget 100: narrowed to 100, less the margin": (100, "binsearch", {}, 95),
    "power, max_val 100: doubles past it, to 128, untried": (None, "power", {"max_val": 100}, 128),
    "binsearch, max_val 100: capped at 100, untried, less the margin": (None, "binsearch",
                                                                        {"max_val": 100}, 95),
    "power, max_trials 3": (None, "power", {"max_trials": 3}, 8),
    "binsearch, max_trials 3: 8 less the margin": (None, "binsearch", {"max_trials": 3}, 7),
    "power, budget 600: returns 1024 although it failed": (600, "power", {}, 1024),
    "power, 3 epochs: big batches train on into the next epoch": (None, "power",
                                                                  {"init_val": 256,
                                                                   "max_epochs": 3}, 1024),
}


@pytest.mark.parametrize("case", CASES)
def test_twin_tries_the_same_sizes_and_returns_the_same_batch_size(tmp_path, case):
    """Both try the same sizes with the same outcomes, return the same size, and draw the same
    random numbers."""
    budget, mode, search_args, expected = CASES[case]
    lightning = search_with_lightning(tmp_path, budget, mode, **search_args)
    by_hand = search_by_hand(budget, mode, **search_args)
    assert by_hand["search"].trials == lightning["search"].trials
    assert by_hand["search"].batch_size == lightning["search"].batch_size == expected
    # Lightning leaves its answer in model.batch_size
    assert lightning["model_batch_size"] == expected
    # same DataLoader seeds drawn, in the same order
    assert torch.equal(by_hand["rng_after"], lightning["rng_after"])


@pytest.mark.parametrize("mode", ["power", "binsearch"])
def test_both_put_the_weights_back_but_not_the_random_generator(tmp_path, mode):
    """After the search the weights are the initial ones again, while torch's generator has moved
    on, alike in both."""
    lightning = search_with_lightning(tmp_path, 100, mode)
    by_hand = search_by_hand(100, mode)
    for twin in (lightning, by_hand):
        assert twin["weights_after"].keys() == twin["weights_before"].keys()
        assert all(torch.equal(twin["weights_after"][name], twin["weights_before"][name])
                   for name in twin["weights_before"])
    assert torch.equal(by_hand["rng_after"], lightning["rng_after"])
    seed_everything(SEED)
    SumMLP(NUM_FEATURES, HIDDEN_SIZE)
    # Lightning does not restore it
    assert not torch.equal(torch.get_rng_state(), lightning["rng_after"])
    assert list(tmp_path.iterdir()) == []  # Lightning deleted its temporary checkpoint


@pytest.mark.parametrize(("mode", "expected"), [("power", 8192), ("binsearch", 7782)])
def test_on_cpu_without_a_budget_the_sum_dataset_search_stops_at_max_val(tmp_path, mode, expected):
    """On the sum dataset's 8,000 training samples, the defaults try 2 to 4096 and answer from
    8192, never tried."""
    lightning = search_with_lightning(tmp_path, None, mode, num_samples=10_000)
    by_hand = search_by_hand(None, mode, num_samples=10_000)
    assert by_hand["search"].trials == lightning["search"].trials == [(2**k, True)
                                                                      for k in range(1, 13)]
    # binsearch: 8192 less 5%
    assert by_hand["search"].batch_size == lightning["search"].batch_size == expected


def test_lightning_first_trial_runs_at_the_model_batch_size(tmp_path):
    """When the model's batch size is not init_val, Lightning's first trial runs at the model's
    size."""
    lightning = search_with_lightning(tmp_path, 100, "power", model_batch_size=32)
    by_hand = search_by_hand(100, "power")
    # what Lightning counts as its init_val=2 trial
    assert lightning["search"].trials[0] == (32, True)
    assert by_hand["search"].trials[0] == (2, True)
    assert lightning["search"].trials[1:] == by_hand["search"].trials[1:]
    assert lightning["search"].batch_size == by_hand["search"].batch_size == 64


def test_lightning_can_return_a_size_it_never_tried_or_one_that_failed(tmp_path):
    """Power mode can answer with a size above max_val that it never tried, or, past the
    dataset's length, one that failed."""
    above_max_val = search_with_lightning(tmp_path, None, "power", max_val=100)["search"]
    assert above_max_val.batch_size == 128
    assert 128 not in [size for size, fitted in above_max_val.trials]
    failed = search_with_lightning(tmp_path, 600, "power")["search"]
    assert failed.batch_size == 1024
    # 1024 >= 1,000 samples, so Lightning would not halve it
    assert failed.trials[-1] == (1024, False)


def test_binsearch_failing_at_the_dataset_size_retries_forever_in_lightning_and_raises_by_hand(
        tmp_path):
    """When 1024 (> 1,000 samples) fails, Lightning's binsearch retries 1024 again and again; the
    twin raises instead."""
    with pytest.raises(SearchStuck, match=f"batch size 1024 failed {GIVE_UP_AFTER} times in a row"):
        search_with_lightning(tmp_path, 600, "binsearch")
    with pytest.raises(RuntimeError, match="batch size 1024 fails .* would retry it forever"):
        search_by_hand(600, "binsearch")
