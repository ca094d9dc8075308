"""Lightning's `Tuner(trainer).lr_find(model, ...)`, the learning-rate range test, by hand.

Mirrors lightning/pytorch/tuner/lr_finder.py (`_lr_find`, `_LRCallback`, `_ExponentialLR`,
`_LinearLR`, `_LRFinder.suggestion`) and callbacks/lr_finder.py (`LearningRateFinder`), as
Lightning 2.6 runs them: train `num_training` steps while the learning rate climbs from
`min_lr` to `max_lr`, record a smoothed loss after each step, stop early once the loss
diverges, then put the weights, the optimizer and every random generator back as they were.
The suggestion is the learning rate where the smoothed loss falls fastest.
tests/test_lr_finder.py holds every number here against Lightning's, bit for bit.

Left out on purpose: gradient accumulation, training steps that return None, several
optimizers, `attr_name` (the plain twin sets the optimizer's lr, not a model attribute),
loaders without len(), `max_epochs=-1`, `sampler.set_epoch`, and the progress bar.
"""

import copy
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from shared.seeding import rng_states, set_rng_states

BETA = 0.98  # _LRCallback's smoothing: each new loss counts for 2% of the running average


@dataclass
class LRFinderResult:
    """The series Lightning keeps as `lr_finder.results["lr"]` and `results["loss"]`."""

    lrs: list[float]
    losses: list[float]  # smoothed, as Lightning records them; NaN and inf are kept
    mode: str = "exponential"

    def suggestion_index(self, skip_begin: int = 10, skip_end: int = 1) -> int | None:
        """The index of the steepest fall of the loss; None with fewer than 2 usable points."""
        # float32 tensors, as Lightning builds them: rounding the float64 losses can move the
        # argmin. Note `[a:-0]` is empty, so skip_end=0 gives no suggestion, in Lightning too.
        losses = torch.tensor(self.losses[skip_begin:-skip_end])
        lrs = torch.tensor(self.lrs[skip_begin:-skip_end])
        is_finite = torch.isfinite(losses)  # a diverged NaN/inf loss is dropped, with its lr
        if is_finite.sum() < 2:  # a gradient needs 2 points; Lightning also logs an error here
            return None
        # d(loss)/d(lr), uneven spacing
        gradients = torch.gradient(losses[is_finite], spacing=[lrs[is_finite]])[0]
        # back to indices of the full series
        kept = torch.arange(len(self.losses))[skip_begin:-skip_end][is_finite]
        return int(kept[torch.argmin(gradients)])

    def suggestion(self, skip_begin: int = 10, skip_end: int = 1) -> float | None:
        """The lr at the steepest negative gradient of loss over lr (Lightning's `suggestion()`)."""
        index = self.suggestion_index(skip_begin, skip_end)
        return None if index is None else self.lrs[index]

    def plot(self, path: str | Path) -> None:
        """Save loss against lr as a PNG, suggestion in red (Lightning's `plot(suggest=True)`)."""
        # a bare Figure draws with Agg: no window, no pyplot state
        from matplotlib.figure import Figure

        figure = Figure()
        ax = figure.subplots()
        ax.plot(self.lrs, self.losses)
        # Lightning uses a log axis only for the exponential schedule
        if self.mode == "exponential":
            ax.set_xscale("log")
        ax.set_xlabel("Learning rate")
        ax.set_ylabel("Loss")
        index = self.suggestion_index()
        if index:  # Lightning tests `if self._optimal_idx:`, so index 0 would go unmarked too
            ax.plot(self.lrs[index], self.losses[index], markersize=10, marker="o", color="red")
        figure.savefig(path, format="png")


def scheduled_lr(step: int, min_lr: float, max_lr: float, num_training: int, mode: str) -> float:
    """The lr of optimizer step `step` (from 0): Lightning's `_ExponentialLR` / `_LinearLR`.

    The same float arithmetic, so the same lr to the last bit."""
    if step == 0:  # the scheduler's constructor step leaves last_epoch=0, which returns the base lr
        return min_lr
    # Later steps use r = (last_epoch + 1) / num_iter, so r = 1/num_training is skipped: step 1
    # uses 2/num_training, and the last step (num_training - 1) reaches max_lr.
    r = (step + 1) / num_training
    if mode == "linear":
        return min_lr + r * (max_lr - min_lr)
    return min_lr * (max_lr / min_lr) ** r


def lr_range_test(
    model: nn.Module,
    train_loader: Iterable,
    optimizer: torch.optim.Optimizer,
    training_loss: Callable[[nn.Module, object], torch.Tensor],
    *,
    min_lr: float = 1e-8,
    max_lr: float = 1.0,
    num_training: int = 100,
    mode: str = "exponential",
    early_stop_threshold: float | None = 4.0,
    val_loader: Iterable | None = None,
    # Trainer(max_epochs=...) caps the search too; 1000 is the Trainer's default
    max_epochs: int = 1000,
    update_lr: bool = True,  # Tuner's update_attr=True: afterwards, train at the suggested lr
    backward: Callable[[torch.Tensor], None] = torch.Tensor.backward,  # Fabric: fabric.backward
) -> LRFinderResult:
    """Run the range test; leave model, optimizer and random generators as they were (but lr)."""
    assert mode in ("linear", "exponential"), "mode should be either `linear` or `exponential`"
    # LearningRateFinder runs the whole search under isolate_rng(): the shuffle seeds, DataLoader
    # base seeds and dropout masks drawn below are handed back, so the real training that
    # follows draws exactly what it would have drawn without the search.
    # torch, CUDA, Python's and NumPy's generators, as isolate_rng() saves them
    saved_rng = rng_states()
    # Lightning writes a checkpoint (".lr_find_<uuid>.ckpt" in default_root_dir) before the
    # search and loads it afterwards: the search's steps at absurd learning rates must not leak
    # into training.
    saved_model = copy.deepcopy(model.state_dict())
    # Adam's moments are empty before any step
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    lrs: list[float] = []
    losses: list[float] = []
    avg_loss = best_loss = 0.0
    step, stop = 0, False
    try:
        for _ in range(max_epochs):
            # iter() draws a base seed from the global generator; a shuffling sampler draws its
            # seed on the first batch.
            for batch_idx, batch in enumerate(train_loader):
                lr = scheduled_lr(step, min_lr, max_lr, num_training, mode)
                for group in optimizer.param_groups:
                    # Lightning swaps in its own scheduler, stepped after every batch
                    group["lr"] = lr
                loss = training_loss(model, batch)  # dropout, if any, draws here
                optimizer.zero_grad()
                backward(loss)
                optimizer.step()
                # trainer.global_step: already counts this step when the callback reads it
                step += 1

                # _LRCallback.on_train_batch_end. The bias correction uses global_step + 1, one
                # more than the number of losses averaged, so the first smoothed loss is about
                # half the raw one (a Lightning quirk).
                avg_loss = BETA * avg_loss + (1 - BETA) * loss.item()
                smoothed_loss = avg_loss / (1 - BETA ** (step + 1))
                diverging = early_stop_threshold is not None and step > 1
                if diverging and smoothed_loss > early_stop_threshold * best_loss:
                    stop = True  # trainer.should_stop: this step is still recorded
                if smoothed_loss < best_loss or step == 1:
                    best_loss = smoothed_loss
                lrs.append(lr)
                losses.append(smoothed_loss)

                # Lightning validates inside the search too, at each epoch's end and when it
                # stops early. The result is thrown away, but its iter() draws from the global
                # generator: skip it and the next epoch shuffles differently. Reaching
                # num_training mid-epoch does not validate.
                if val_loader is not None and (stop or batch_idx + 1 == len(train_loader)):
                    _validate(model, val_loader, training_loss, max_batches=num_training)
                if stop or step == num_training:
                    break
            if stop or step == num_training:
                break
    finally:
        # copies into the same tensors; .grad keeps the last step's gradients
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_optimizer)  # the original lr, and no Adam moments
        set_rng_states(saved_rng)

    result = LRFinderResult(lrs, losses, mode)
    suggested_lr = result.suggestion()
    # Lightning sets model.lr, and the next fit builds its optimizer from it
    if update_lr and suggested_lr is not None:
        for group in optimizer.param_groups:
            group["lr"] = suggested_lr
    return result


@torch.no_grad()  # Lightning's validation inside fit runs under no_grad (not inference_mode)
def _validate(model: nn.Module, val_loader: Iterable, training_loss: Callable,
              max_batches: int) -> None:
    """Lightning's validation run inside lr_find (limit_val_batches=num_training).

    Only its side effects matter: the draws of its iter(), and the modes it switches."""
    model.zero_grad()  # on_validation_model_zero_grad: the gradients are freed (set to None) first
    model.eval()
    for batch in itertools.islice(val_loader, max_batches):  # iter() draws a base seed
        training_loss(model, batch)
    model.train()

