"""Step 2 of 3: a real training job, a small MNIST conv net with dropout, by Lightning.

Twin: plain_pytorch/cnn_classifier.py writes the same training job by hand;
tests/test_parity.py proves both give the same per-step losses, bit for bit. Read the two
side by side, `diff -y -W 210 plain_pytorch/cnn_classifier.py
lightning_version/cnn_classifier.py`. Step 1 (mnist_feedforward.py) taught the Trainer itself.

This step teaches: `configure_optimizers` returning SGD and a StepLR scheduler; two
`ModelCheckpoint`s (best, and last after every epoch), `trainer.fit(ckpt_path=...)` to
resume, and `load_from_checkpoint` with `save_hyperparameters()` to rebuild the best model;
the `on_train_batch_end` and `on_validation_epoch_end` hooks, which stop the run at a nan
or infinite loss; a checkpoint-IO plugin (`Trainer(plugins=[...])`,
shared/checkpoint_plugin.py) that adds to each checkpoint the flags it fixes (--batch-size,
--seed, ...), refuses a `--resume` run with other values, and saves atomically; a
`LightningDataModule`; `trainer.test` and `trainer.predict` with `test_step` and
`predict_step`; training on N processes at once with `Trainer(strategy="ddp", devices=N)`
and `self.log(..., sync_dist=True)`: the lines marked "DDP:".

Run:  python -m lightning_version.cnn_classifier --checkpoint-dir checkpoints --test --predict 10
      python -m lightning_version.cnn_classifier --devices 2

Left out on purpose: a custom Dataset, worker seeding, early stopping, the finders,
clipping, mixed precision and accumulation (step 3, sum_dataset.py).
"""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from torch.utils.data import DataLoader

from shared import process_setup, run_end
from shared.checkpoint_plugin import CheckedCheckpointIO
from shared.data import first, load_mnist
from shared.divergence import stop_if_diverged
from shared.flags import parse_args
from shared.lightning_callbacks import RecordMetrics, RngInCheckpoint
from shared.models import ConvNet
from shared.run_folders import claim_run_folders
from shared.run_record import RunRecord, show_predictions

EXAMPLE = "cnn_classifier"


class LitConvNet(L.LightningModule):
    """Wraps the shared `ConvNet` (it does not redefine it): training, test and predict steps."""

    def __init__(self, lr: float, momentum: float, lr_step_gamma: float) -> None:
        super().__init__()
        # Keeps the arguments above as self.hparams (configure_optimizers reads them) and writes
        # them into every checkpoint, so LitConvNet.load_from_checkpoint(path) rebuilds this
        # module from the file alone, without being told lr, momentum and gamma again.
        self.save_hyperparameters()
        self.model = ConvNet()  # the same network the plain twin trains

    def training_step(self, batch, batch_idx):  # in train mode: dropout on
        images, labels = batch
        logits = self.model(images)  # (B, 10); dropout zeroes a random part of the activations
        loss = F.cross_entropy(logits, labels)
        self.log("train_loss", loss)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx):  # after the step, as the plain twin
        stop_if_diverged(outputs["loss"], self.global_step, self.hparams.lr)  # raises: fit ends

    def on_validation_epoch_end(self):  # before ModelCheckpoint saves: never a nan best.ckpt
        if not self.trainer.sanity_checking:
            val_loss = self.trainer.callback_metrics["val_loss"]
            stop_if_diverged(val_loss, self.global_step, self.hparams.lr, "val_loss")

    def validation_step(self, batch, batch_idx):  # eval mode (dropout off), under torch.no_grad()
        loss, accuracy = self.loss_and_accuracy(batch)
        self.log("val_loss", loss, prog_bar=True, sync_dist=True)  # DDP: mean over processes
        self.log("val_accuracy", accuracy, prog_bar=True, sync_dist=True)  # (one process: no-op)

    def test_step(self, batch, batch_idx):  # trainer.test: the same, on the test split
        loss, accuracy = self.loss_and_accuracy(batch)
        self.log("test_loss", loss)
        self.log("test_accuracy", accuracy)

    def loss_and_accuracy(self, batch):
        images, labels = batch
        logits = self.model(images)
        return F.cross_entropy(logits, labels), (logits.argmax(dim=1) == labels).float().mean()

    def predict_step(self, batch, batch_idx):  # trainer.predict
        images, _ = batch
        return self.model(images).argmax(dim=1)  # (B,) predicted digits

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.model.parameters(), lr=self.hparams.lr,
                                    momentum=self.hparams.momentum)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1,
                                                    gamma=self.hparams.lr_step_gamma)
        return {"optimizer": optimizer, "lr_scheduler": scheduler}  # stepped after every epoch


class MNISTDataModule(L.LightningDataModule):
    """The data side of the job in one class: the Trainer calls setup(), then asks for loaders."""

    def __init__(self, args) -> None:
        super().__init__()
        self.args = args

    def setup(self, stage: str) -> None:  # before fit, test and predict: load the splits once
        if not hasattr(self, "test_set"):
            splits = load_mnist(self.args.data_dir, self.args.dataset)
            self.train_set, self.val_set, self.test_set, note = splits
            if self.trainer.is_global_zero:  # DDP: every process loads the data, one says so
                print(note)

    def train_dataloader(self):  # DDP: Lightning swaps its sampler for a DistributedSampler
        return DataLoader(first(self.train_set, self.args.limit_train),
                          batch_size=self.args.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(first(self.val_set, self.args.limit_val), batch_size=self.args.batch_size)

    def test_dataloader(self):
        return DataLoader(self.test_set, batch_size=self.args.batch_size)

    def predict_dataloader(self):
        return DataLoader(first(self.test_set, self.args.predict), batch_size=self.args.batch_size)


def main(argv: list[str] | None = None) -> RunRecord:
    args = parse_args(EXAMPLE, "lightning", argv, about=__doc__)
    L.seed_everything(args.seed)  # same seed, same weights, same dropout masks

    # Data: the DataModule loads the splits when the Trainer calls its setup().
    datamodule = MNISTDataModule(args)

    # Model; the Trainer puts it on its device, and the optimizer comes from configure_optimizers.
    model = LitConvNet(args.lr, args.momentum, args.lr_step_gamma)

    # Checkpoints: best.ckpt (lowest val_loss) and last.ckpt (every epoch), two callbacks.
    run = claim_run_folders(args, EXAMPLE, "lightning")  # DIR/EXAMPLE/lightning/version_N
    record = RunRecord.start(EXAMPLE, "lightning", args)  # its losses, accuracies and time
    callbacks = [RecordMetrics(record), RngInCheckpoint()]  # fill the record; RNG into checkpoints
    if args.checkpoint_dir:  # DDP: on every process; Lightning hands them rank 0's folder
        best = ModelCheckpoint(dirpath=run.checkpoints, filename="best", monitor="val_loss",
                               mode="min")
        last = ModelCheckpoint(dirpath=run.checkpoints, filename="last")  # no monitor: each epoch
        callbacks += [best, last]  # not save_last=True: that rewrites last.ckpt only with best.ckpt

    # The loop: the Trainer trains one epoch, then validates, `max_epochs` times.
    trainer = L.Trainer(
        max_epochs=args.epochs,
        accelerator=args.accelerator,
        devices=args.devices,  # DDP: N processes; Lightning starts the other N - 1 itself
        num_nodes=args.num_nodes,  # DDP: machines, each started by torchrun or SLURM
        strategy="ddp" if args.devices * args.num_nodes > 1 else "auto",  # samplers, DDP wrapper
        fast_dev_run=args.dry_run,
        logger=TensorBoardLogger(f"{args.log_dir}/{EXAMPLE}", "lightning", version=run.version,
                                 default_hp_metric=False),  # version_N, claimed above
        log_every_n_steps=1,
        enable_progress_bar=not args.no_progress, enable_model_summary=False,  # no layer table
        enable_checkpointing=bool(args.checkpoint_dir),
        callbacks=callbacks,
        plugins=[CheckedCheckpointIO(model, args)],  # adds run_flags; checks --resume against them
    )
    trainer.fit(model, datamodule=datamodule, ckpt_path=args.resume)  # resume: all state back

    # Test and predict with the best model, rebuilt from its file and its hyperparameters.
    if run.checkpoints:
        model = LitConvNet.load_from_checkpoint(best.best_model_path)
    if args.test:
        record.test = trainer.test(model, datamodule=datamodule)[0]  # prints Lightning's table
    if args.predict:
        record.predictions = torch.cat(trainer.predict(model, datamodule=datamodule)).tolist()
        show_predictions(record.predictions, first(datamodule.test_set, args.predict))
    return record.finish(args)  # prints the summary line (shared/run_record.py)


if __name__ == "__main__":
    with run_end.in_one_line(), process_setup.in_place():
        main()
