"""What the Lightning twins plug into their Trainer: the record's callback and the random state.

Only the Lightning twins import this module. (Their checkpoint plugin, which the Fabric twin
of step 2 uses too, is shared/checkpoint_plugin.py.)
- `RecordMetrics` fills the same `RunRecord` the plain twin fills by hand, from what
  Lightning already computed, and prints the same line after each validation. It changes
  nothing in the run. As each stage starts it also gives SIGTERM back Ctrl-C's handler, which
  the Trainer had replaced with one that can hang a DDP run (shared/run_end.py:
  `sigterm_stops_as_ctrl_c`), so that SIGTERM stops the Lightning twins as it stops the others.
- `RngInCheckpoint` adds the global generators' states to every checkpoint and restores
  them on resume. Lightning's checkpoints hold the model, optimizers, schedulers, loops and
  callbacks, but not the random state, so without it a resumed run shuffles and drops out
  differently from the run it continues.
"""

import lightning as L

from shared.run_end import sigterm_stops_as_ctrl_c
from shared.run_record import RunRecord
from shared.seeding import rng_states, set_rng_states


class RecordMetrics(L.Callback):
    def __init__(self, record: RunRecord) -> None:
        self.record = record

    def on_train_start(self, trainer, pl_module) -> None:
        sigterm_stops_as_ctrl_c()  # the Trainer's own handler is in place by now

    on_validation_start = on_test_start = on_predict_start = on_train_start

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # What training_step logged: the batch's loss before Lightning divides it by
        # accumulate_grad_batches (outputs["loss"] is the divided one).
        self.record.train_loss.append(trainer.callback_metrics["train_loss"].item())

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:  # the 2-batch sanity check before training is not an epoch
            return
        metrics = trainer.callback_metrics  # the epoch means validation_step's self.log built
        line = self.record.end_epoch(trainer.current_epoch, metrics["val_loss"].item(),
                                     metrics["val_accuracy"].item())
        pl_module.print(line)  # above the progress bar, as the plain twin prints it after its bar


class RngInCheckpoint(L.Callback):
    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint["rng_states"] = rng_states()

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        if "rng_states" in checkpoint:
            set_rng_states(checkpoint["rng_states"])



class RecordBySteps(RecordMetrics):
    """Step 4's record: each step's loss and learning rate, and each evaluation by its step."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        # The rate this step uses, as LearningRateMonitor(logging_interval="step") reads it.
        self.record.learning_rate.append(trainer.optimizers[0].param_groups[0]["lr"])

    def on_validation_end(self, trainer, pl_module) -> None:
        metrics = trainer.callback_metrics
        line = self.record.end_eval(trainer.global_step, metrics["val_loss"].item(),
                                    metrics["val_accuracy"].item())
        pl_module.print(line)
