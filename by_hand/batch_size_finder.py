"""Lightning's `Tuner(trainer).scale_batch_size(model, mode=...)`, by hand (step 3, sum_dataset).

Mirrors lightning/pytorch/tuner/batch_size_scaling.py (Lightning 2.6). A trial trains the
model for `steps_per_trial` real optimizer steps at one batch size, and fails if that raises
an out-of-memory error. tests/test_batch_size_finder.py holds every trial against Lightning's.
- "power": double after each success. After a failure halve, and stop if anything has fitted
  (else keep halving). At most `max_trials` trials.
- "binsearch": double until the first failure, then bisect between the largest size that
  fitted and the smallest that failed until they are 1 apart; only successes count towards
  `max_trials`. The result is then cut by `margin`: int(size * (1 - margin)).
- Both stop before trying a size >= `max_val`, and return that untried size. Once the size
  tried holds the whole training set, Lightning moves it no more, up or down. Power mode
  doubles past your `max_val` (capped at 8192) before it stops: max_val=100 returns 128.

Afterwards Lightning reloads weights, optimizer and loops from a checkpoint it saved first;
this keeps a copy of the weights in memory and throws its optimizer away. Neither puts back
the global random generator: every DataLoader iterator draws a seed from it, and this draws
the same ones, in the same order. (A callback that saves the generator in checkpoints, like
step 2's RngInCheckpoint, makes Lightning's restore rewind it: `restore_rng=True`.)
Lightning leaves the result in `model.batch_size` (or a DataModule's); this returns it.

On CPU nothing runs out of memory in a few steps, so only those limits stop the search. On
the sum dataset's 8,000 training samples with the defaults, both modes try 2, 4, ..., 4096;
power returns 8192 (max_val: never tried, more than the dataset), binsearch 7782 (8192 less
5%). `MemoryBudget` gives both twins the same pretend GPU, so there is something to find.

Left out: `batch_arg_name`, method="validate"/"test"/"predict", iterable datasets, freeing
CUDA memory between trials, gradient accumulation (Lightning's max_steps counts optimizer
steps, so with accumulate_grad_batches=k its trials run k times as many batches). Two
differences: Lightning's first trial runs at the model's batch size, not `init_val`,
when the two differ (it builds the loader before setting init_val), this one at init_val;
and where binsearch fails at a size >= the training set's length, Lightning retries that
size forever, while this raises.
"""

import copy
from collections.abc import Callable, Sized
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from shared.seeding import rng_states, set_rng_states

# `_adjust_batch_size`'s own default max_val, where Lightning does not pass yours on
LIGHTNING_CAP = 8192


class MemoryBudget:
    """A pretend GPU that holds at most `max_samples` samples in one batch.

    Call `check` before a forward pass."""

    def __init__(self, max_samples: int) -> None:
        self.max_samples = max_samples

    def check(self, batch_size: int) -> None:
        # worded like PyTorch's error, which is what Lightning looks for
        if batch_size > self.max_samples:
            raise RuntimeError(f"CUDA out of memory. (simulated: batch of {batch_size} > "
                               f"budget of {self.max_samples} samples)")


def is_out_of_memory(error: RuntimeError) -> bool:
    """Lightning's `is_oom_error` (utilities/memory.py): it reads a RuntimeError's message."""
    message = error.args[0] if len(error.args) == 1 and isinstance(error.args[0], str) else ""
    return (("CUDA" in message and "out of memory" in message)
            or "cuDNN error: CUDNN_STATUS_NOT_SUPPORTED." in message
            or "DefaultCPUAllocator: can't allocate memory" in message)


@dataclass
class BatchSizeSearch:
    trials: list[tuple[int, bool]]  # (batch size, fitted?) in the order tried
    batch_size: int  # what Tuner.scale_batch_size returns


def next_size(current: int, proposed: int, train_size: int, cap: int) -> tuple[int, bool]:
    """Lightning's `_adjust_batch_size`: the size to try next, and whether it changed."""
    # a batch already held the whole training set: Lightning will not move
    if current >= train_size:
        return current, False
    new_size = min(proposed, cap)
    return new_size, new_size != current


class Trials:
    """Runs trials as Lightning's fit loop does, on a train loader rebuilt for each new size."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, train_set: Dataset,
                 val_set: Dataset | None, training_loss: Callable, steps_per_trial: int,
                 max_epochs: int, backward: Callable = torch.Tensor.backward) -> None:
        self.model, self.optimizer, self.backward = model, optimizer, backward
        self.train_set, self.val_set = train_set, val_set
        self.training_loss = training_loss
        self.steps_per_trial, self.max_epochs = steps_per_trial, max_epochs
        self.tried: list[tuple[int, bool]] = []

    def rebuild(self, batch_size: int) -> None:
        """Lightning's `_reset_dataloaders`: a new train loader and, at once, its iterator.

        Creating the iterator draws a seed from the global generator, even if the search then
        stops without trying this size; so the calls stay exactly where Lightning makes them.
        """
        self.train_loader = DataLoader(self.train_set, batch_size=batch_size, shuffle=True)
        self.first_epoch = iter(self.train_loader)

    def fits(self) -> bool:
        """Train `steps_per_trial` steps at the loader's batch size (Lightning: max_steps).

        False when a step ran out of memory."""
        model, optimizer, train_loader, steps = self.model, self.optimizer, self.train_loader, 0
        try:
            # a small dataset ends an epoch before the steps are done
            for epoch in range(self.max_epochs):
                model.train()
                # a later epoch reshuffles
                batches = self.first_epoch if epoch == 0 else iter(train_loader)
                # the first batch draws the shuffling seed; batch_idx is read after the loop
                for batch_idx, batch in enumerate(batches):  # noqa: B007
                    optimizer.zero_grad()
                    loss = self.training_loss(model, batch)
                    self.backward(loss)
                    optimizer.step()
                    steps += 1
                    if steps == self.steps_per_trial:
                        break
                # epoch over: Lightning validates
                if self.val_set is not None and batch_idx + 1 == len(train_loader):
                    model.eval()
                    val_loader = DataLoader(self.val_set, batch_size=train_loader.batch_size)
                    # limit_val_batches = steps_per_trial; iter() draws a seed here too
                    with torch.no_grad():
                        for _, batch in zip(range(self.steps_per_trial), val_loader):
                            # a forward pass, which could run out of memory too
                            self.training_loss(model, batch)
                    model.train()
                if steps == self.steps_per_trial:
                    break
            fitted = True
        except RuntimeError as error:
            if not is_out_of_memory(error):
                raise  # a real bug, not a batch that is too large
            fitted = False
        self.tried.append((train_loader.batch_size, fitted))
        return fitted


def power_search(trials: Trials, size: int, max_trials: int, max_val: int, train_size: int) -> int:
    """Lightning's `_run_power_scaling`."""
    any_success = False
    for trial in range(max_trials):
        if size >= max_val:  # checked before trying: the size returned may never have been tried
            break
        if trials.fits():
            if trial + 1 >= max_trials:
                break
            size, changed = next_size(size, size * 2, train_size, LIGHTNING_CAP)
            if not changed:
                break
            trials.rebuild(size)
            any_success = True
        else:  # halve (Lightning: int(size * 0.5)), unless the dataset-size rule keeps it
            size, _ = next_size(size, size // 2, train_size, LIGHTNING_CAP)
            trials.rebuild(size)
            if any_success:
                break
    return size


def binsearch_search(trials: Trials, size: int, max_trials: int, max_val: int, train_size: int,
                     margin: float) -> int:
    """Lightning's `_run_binsearch_scaling`, margin included."""
    # low: the largest size that fitted; high: the smallest that failed
    low, high, successes = 1, None, 0
    while size < max_val:  # checked before trying: the size returned may never have been tried
        if trials.fits():
            successes += 1
            if successes >= max_trials:
                break
            low = size
            if high is None:  # nothing has failed yet: keep doubling
                size, changed = next_size(size, size * 2, train_size, max_val)
            elif high - low <= 1:
                break
            else:
                size, changed = next_size(size, (low + high) // 2, train_size, max_val)
            if not changed:
                break
            trials.rebuild(size)
        else:
            high = size
            size, _ = next_size(size, (low + high) // 2, train_size, LIGHTNING_CAP)
            trials.rebuild(size)
            if high - low <= 1:
                break
            # the dataset-size rule refused to shrink it: Lightning loops here forever
            if size == high:
                raise RuntimeError(f"batch size {high} fails but is >= the {train_size} training "
                                   "samples; Lightning's binsearch would retry it forever")
    if margin > 0:  # a safety buffer below the largest size that fitted
        size = max(1, int(size * (1 - margin)))
    return size


def scale_batch_size(model: nn.Module, train_set: Dataset,
                     training_loss: Callable[[nn.Module, list], torch.Tensor],
                     make_optimizer: Callable[[nn.Module], torch.optim.Optimizer], *,
                     val_set: Dataset | None = None, mode: str = "power", steps_per_trial: int = 3,
                     init_val: int = 2, max_trials: int = 25, margin: float = 0.05,
                     max_val: int = 8192, max_epochs: int = 1000,
                     restore_rng: bool = False,
                     backward: Callable = torch.Tensor.backward) -> BatchSizeSearch:
    """The largest batch size whose training steps do not run out of memory, and every trial.

    `training_loss(model, batch)` is the forward pass and loss of one batch; `make_optimizer`
    builds the optimizer the trials step. `val_set` and `max_epochs` are the Trainer's (1000
    is its default): a trial validates when an epoch ends inside it, and goes on into the
    next epoch, reshuffled, if `max_epochs` allows. `restore_rng=True` mirrors a Trainer whose
    checkpoints carry the random generators (the twins' RngInCheckpoint): restoring its
    checkpoint rewinds them to where the search began.
    `backward(loss)` is `loss.backward()`; the Fabric twin passes `fabric.backward`.
    """
    assert mode in ("power", "binsearch") and 0.0 <= margin < 1.0
    assert isinstance(train_set, Sized)  # the dataset-size rule needs its length
    # one for all trials: Lightning's comes from configure_optimizers
    optimizer = make_optimizer(model)
    saved_weights = copy.deepcopy(model.state_dict())  # Lightning: trainer.save_checkpoint(...)
    saved_rng = rng_states()
    trials = Trials(model, optimizer, train_set, val_set, training_loss, steps_per_trial,
                    max_epochs, backward)
    trials.rebuild(init_val)  # Lightning builds this first loader at the model's batch size
    batch_size = init_val
    try:
        if mode == "power":
            batch_size = power_search(trials, init_val, max_trials, max_val, len(train_set))
        else:
            batch_size = binsearch_search(trials, init_val, max_trials, max_val, len(train_set),
                                          margin)
    finally:
        # Lightning: restores its checkpoint, then deletes the file
        model.load_state_dict(saved_weights)
        # restoring, Lightning rebuilds the loader once more: one more draw
        trials.rebuild(batch_size)
        if restore_rng:
            set_rng_states(saved_rng)
    return BatchSizeSearch(trials=trials.tried, batch_size=batch_size)
