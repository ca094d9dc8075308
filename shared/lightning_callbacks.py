"""What the Lightning twins plug into their Trainer: two callbacks and a checkpoint reader.

Only the Lightning and Fabric twins import this module, so the plain twins never import
Lightning. The Fabric twin uses `CheckedCheckpointIO` alone (`Fabric(plugins=[...])`).
- `RecordMetrics` fills the same `RunRecord` the plain twin fills by hand, from what
  Lightning already computed, and prints the same line after each validation. It changes
  nothing in the run.
- `RngInCheckpoint` adds the global generators' states to every checkpoint and restores
  them on resume. Lightning's checkpoints hold the model, optimizers, schedulers, loops and
  callbacks, but not the random state, so without it a resumed run shuffles and drops out
  differently from the run it continues.
- `CheckedCheckpointIO` is Lightning's own checkpoint reader and writer (`TorchCheckpointIO`,
  the extension point `Trainer(plugins=[...])` takes), reading and writing the way the plain
  twin does (shared/checkpoint_files.py): it refuses, in one line, a `--resume` file that
  cannot resume this run, and writes each file beside its target and renames it into place.
"""

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from shared.checkpoint_files import atomic_save, load_checkpoint_checked
from shared.run_record import RunRecord
from shared.seeding import rng_states, set_rng_states


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


class CheckedCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO, reading and writing the way the plain twin does.

    Reading: `trainer.fit(ckpt_path=PATH)` (in the Fabric twin, `fabric.load(PATH, ...)`) reads
    the `--resume` file PATH through this, once, safely and checked.
    Lightning alone would fail on a plain twin's checkpoint, or one of another example, with
    a KeyError or a size mismatch deep in its loading code; a learner deserves one line.
    Writing: Lightning's own `save_checkpoint` writes into a temporary file in $TMPDIR and
    then moves it into place; when the checkpoint folder is on another filesystem that move is
    a copy, and a kill or a full disk during it destroys the previous file. `atomic_save`
    writes beside the target and renames, which is atomic on any filesystem.
    """

    def __init__(self, model: torch.nn.Module, args, twin: str = "lightning") -> None:
        super().__init__()
        self.model, self.args, self.twin = model, args, twin

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
        if self.args.resume and Path(path).resolve() == Path(self.args.resume).resolve():
            return load_checkpoint_checked(path, self.twin, self.model, self.args)
        # Another file: the Fabric twin's own best.ckpt, reloaded for --test and --predict.
        return super().load_checkpoint(path, map_location, weights_only=True)

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomic_save(path, checkpoint)
