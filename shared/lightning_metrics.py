"""A Lightning Callback that fills the same `RunRecord` the plain twin fills by hand.

Only the Lightning twins import this module, so the plain twins never import Lightning.
It reads what Lightning already computed: the loss that `training_step` returned, and the
epoch-level `val_loss`/`val_accuracy` that `self.log` aggregated. It changes nothing.
"""

import lightning as L

from shared.metrics import RunRecord


class RecordMetrics(L.Callback):
    def __init__(self, record: RunRecord) -> None:
        self.record = record

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # `outputs["loss"]` is a detached copy of what training_step returned.
        self.record.train_loss.append(outputs["loss"].item())

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:  # the 2-batch sanity check before training is not an epoch
            return
        self.record.val_loss.append(trainer.callback_metrics["val_loss"].item())
        self.record.val_accuracy.append(trainer.callback_metrics["val_accuracy"].item())
