"""Two small Lightning Callbacks that both Lightning twins use.

Only the Lightning twins import this module, so the plain twins never import Lightning.
- `RecordMetrics` fills the same `RunRecord` the plain twin fills by hand, from what
  Lightning already computed, and prints the same line after each validation. It changes
  nothing in the run.
- `RngInCheckpoint` adds the global generators' states to every checkpoint and restores
  them on resume. Lightning's checkpoints hold the model, optimizers, schedulers, loops and
  callbacks, but not the random state, so without it a resumed run shuffles and drops out
  differently from the run it continues.

Importing it also sends Lightning's INFO lines ("Seed set to 42", "GPU available: ...") to
stdout, where the plain twins print theirs. Lightning logs them to stderr, so a run that
stopped on bad input showed them above its one error line; now stderr holds only warnings
and errors, in both twins alike. It also silences one FutureWarning that torch 2.14 raises
inside Lightning 2.6's own code (`LeafSpec()` in lightning/pytorch/utilities/_pytree.py):
nothing a learner can change, and it printed above every run's first step.
"""

import logging
import sys
import warnings

import lightning as L
import torch

from shared.cli import BadInput, check_resumable, check_weights_fit
from shared.metrics import RunRecord
from shared.seeding import rng_states, set_rng_states


class _ToStdout(logging.StreamHandler):
    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout  # looked up at each line: pytest and notebooks replace sys.stdout
        super().emit(record)


for _name in ("lightning.pytorch", "lightning.fabric"):  # the two loggers Lightning gives a handler
    _logger = logging.getLogger(_name)
    for _handler in [h for h in _logger.handlers if type(h) is logging.StreamHandler]:
        _logger.removeHandler(_handler)
        _logger.addHandler(_ToStdout())


warnings.filterwarnings("ignore", r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning)


class RecordMetrics(L.Callback):
    def __init__(self, record: RunRecord) -> None:
        self.record = record

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # What training_step logged: the batch's loss before Lightning divides it by
        # accumulate_grad_batches (outputs["loss"] is the divided one).
        self.record.train_loss.append(trainer.callback_metrics["train_loss"].item())

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:  # the 2-batch sanity check before training is not an epoch
            return
        metrics = trainer.callback_metrics  # the epoch means that validation_step's self.log built
        line = self.record.end_epoch(trainer.current_epoch, metrics["val_loss"].item(), metrics["val_accuracy"].item())
        pl_module.print(line)  # above the progress bar, as the plain twin prints it after its bar


class RngInCheckpoint(L.Callback):
    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint["rng_states"] = rng_states()

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        if "rng_states" in checkpoint:
            set_rng_states(checkpoint["rng_states"])


def lightning_checkpoint(path: str | None, model: L.LightningModule) -> str | None:
    """`path` if it is a Lightning checkpoint whose weights fit `model` (or None); else bad input.

    Lightning would fail on a plain twin's checkpoint, or on one of another example, with a
    KeyError or a size mismatch deep in its loading code; a learner who mixed them up
    deserves one line instead.
    """
    if path is None:
        return None
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)  # shared/cli.py checked it loads
    if "pytorch-lightning_version" not in checkpoint:
        raise BadInput(f"--resume {path}: not a Lightning checkpoint; resume a plain twin's with the plain twin")
    needed = ("state_dict", "optimizer_states", "lr_schedulers", "loops", "epoch", "global_step", "rng_states")
    check_resumable(checkpoint, needed, path)  # rng_states: RngInCheckpoint would otherwise skip it silently
    check_weights_fit(checkpoint["state_dict"], model, path)
    return path
