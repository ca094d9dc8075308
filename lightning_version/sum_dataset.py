"""Synthetic vectors labelled "sum > 0", with a wide MLP, trained by a LightningModule and a Trainer.

Twin: plain_pytorch/sum_dataset.py writes the same training loop by hand;
tests/test_parity.py proves both give the same per-step losses, bit for bit. Read the two
side by side (`diff -y`): what is missing here is what the Trainer does for you.

Run:  python -m lightning_version.sum_dataset --epochs 5
Flags (shared with the twin): python -m lightning_version.sum_dataset --help

Left out on purpose: several GPUs (DDP), several optimizers, streaming datasets; the
16-mixed (float16) path is written but untested here, as this machine has no GPU.

This is the showcase for Lightning's extras (the tutorials' "75 lines" example): TensorBoard
logging, checkpoints and resume, early stopping, the LR and batch-size finders, seeding,
clipping, mixed precision, accumulation, a scheduler, test and predict. Each is one
argument or one callback here; tests/test_features.py holds each against its plain twin.
"""

import time

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.tuner import Tuner
from torch.utils.data import DataLoader

from shared.cli import exit_on_bad_input, parse_args
from shared.data import first, make_sum_dataset
from shared.lightning_data import TensorDataModule
from shared.lightning_callbacks import RecordMetrics, RngInCheckpoint, lightning_checkpoint
from shared.metrics import RunRecord, output_dir
from shared.models import SumMLP

EXAMPLE = "sum_dataset"


class LitSumMLP(L.LightningModule):
    """Wraps the shared `SumMLP` model; it does not redefine it."""

    def __init__(self, num_features: int, hidden_size: int, lr: float, lr_step_gamma: float | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()  # into every checkpoint: load_from_checkpoint rebuilds the model from them
        self.model = SumMLP(num_features, hidden_size)  # initial weights: drawn from the seeded global generator
        self.lr = lr  # Tuner.lr_find writes its suggestion here
        self.lr_step_gamma = lr_step_gamma

    def training_step(self, batch, batch_idx):
        features, labels = batch  # already on the device, under autocast if --precision asks
        logits = self.model(features)  # (B,) one logit per vector
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        self.log("train_loss", loss)  # Lightning 1.x returned {"loss": loss, "log": {...}}
        return loss  # the Trainer calls zero_grad, backward, clipping and step around this

    def validation_step(self, batch, batch_idx):  # runs in eval mode, under torch.no_grad()
        loss, accuracy = self.loss_and_accuracy(batch)
        # In validation, self.log averages over the epoch, weighted by batch size. This
        # replaces 1.x's `validation_epoch_end`, which had to average the outputs by hand.
        self.log("val_loss", loss, prog_bar=True)
        self.log("val_accuracy", accuracy, prog_bar=True)

    def test_step(self, batch, batch_idx):  # trainer.test: the same, on the test split
        loss, accuracy = self.loss_and_accuracy(batch)
        self.log("test_loss", loss)
        self.log("test_accuracy", accuracy)

    def loss_and_accuracy(self, batch):
        features, labels = batch
        logits = self.model(features)
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        accuracy = ((logits > 0).float() == labels).float().mean()  # logit > 0 means p > 0.5
        return loss, accuracy

    def predict_step(self, batch, batch_idx):  # trainer.predict
        features, _ = batch
        return (self.model(features) > 0).long()  # (B,) predicted labels

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.model.parameters(), lr=self.lr)
        if self.lr_step_gamma is None:
            return optimizer
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=self.lr_step_gamma)
        return {"optimizer": optimizer, "lr_scheduler": scheduler}  # stepped after every epoch


def main(argv: list[str] | None = None) -> RunRecord:
    args = parse_args(EXAMPLE, argv)
    L.seed_everything(args.seed, workers=True)  # workers=True: seeds each DataLoader worker too

    # Data: tensors in memory; the DataModule builds the same loaders as the plain twin.
    train_set, val_set, test_set, note = make_sum_dataset(args.num_samples, args.num_features, args.seed)
    print(note)  # --data-dir is not used
    datamodule = TensorDataModule(first(train_set, args.limit_train), first(val_set, args.limit_val), test_set,
                                  batch_size=args.batch_size, num_workers=args.num_workers)

    # Model; the optimizer comes from configure_optimizers, the device from the Trainer.
    model = LitSumMLP(args.num_features, args.hidden_size, args.lr, args.lr_step_gamma)

    # The loop: the Trainer trains one epoch, then validates, `max_epochs` times.
    record = RunRecord.start(EXAMPLE, "lightning", args)
    callbacks = [RecordMetrics(record), RngInCheckpoint()]
    if args.early_stopping_patience:
        callbacks.append(EarlyStopping(monitor="val_loss", mode="min", patience=args.early_stopping_patience,
                                       min_delta=args.early_stopping_min_delta))
    if args.checkpoint_dir:
        callbacks.append(ModelCheckpoint(dirpath=f"{args.checkpoint_dir}/{EXAMPLE}/lightning", filename="best",
                                         monitor="val_loss", mode="min", save_last=True))
    trainer = L.Trainer(
        max_epochs=args.epochs,
        accelerator=args.accelerator,  # replaces 1.x's gpus=N
        devices=1,
        precision=args.precision,  # "bf16-mixed": forward under torch.autocast(bfloat16)
        gradient_clip_val=args.gradient_clip_val,
        gradient_clip_algorithm=args.gradient_clip_algorithm,
        accumulate_grad_batches=args.accumulate_grad_batches,
        deterministic=args.deterministic,
        fast_dev_run=args.dry_run,  # one train batch, one val batch, nothing written
        logger=TensorBoardLogger(args.log_dir, name=EXAMPLE, version="lightning", default_hp_metric=False),
        log_every_n_steps=1,  # every step's train_loss reaches TensorBoard (default: every 50th)
        enable_progress_bar=not args.no_progress,
        enable_checkpointing=bool(args.checkpoint_dir),
        callbacks=callbacks,
    )
    if args.find_lr and not args.dry_run:  # replaces 1.x's Trainer(auto_lr_find=True)
        lr_finder = Tuner(trainer).lr_find(model, datamodule=datamodule)  # sets model.lr to its suggestion
        print(f"lr finder suggests {lr_finder.suggestion()}")
        lr_finder.plot(suggest=True).savefig(output_dir(args.log_dir, EXAMPLE, "lightning") / "lr_find.png")
    if args.find_batch_size and not args.dry_run:  # replaces 1.x's Trainer(auto_scale_batch_size=...)
        Tuner(trainer).scale_batch_size(model, datamodule=datamodule, mode=args.find_batch_size, init_val=args.batch_size)
        print(f"batch-size finder chose {datamodule.batch_size}")
    start = time.perf_counter()
    trainer.fit(model, datamodule=datamodule, ckpt_path=lightning_checkpoint(args.resume, model))
    record.seconds = time.perf_counter() - start

    if args.test:
        record.test = trainer.test(model, datamodule=datamodule, verbose=False)[0]
    if args.predict:
        predict_loader = DataLoader(first(test_set, args.predict), batch_size=datamodule.batch_size,
                                    num_workers=args.num_workers)
        record.predictions = torch.cat(trainer.predict(model, dataloaders=predict_loader)).tolist()
    print(record.summary())
    record.write(args)
    return record


if __name__ == "__main__":
    with exit_on_bad_input():
        main()
