"""MNIST with a small conv net and dropout, trained by a LightningModule and a Trainer.

Twin: plain_pytorch/cnn_classifier.py writes the same training loop by hand;
tests/test_parity.py proves both give the same per-step losses, bit for bit. Read the two
side by side (`diff -y`): what is missing here is what the Trainer does for you.

Run:  python -m lightning_version.cnn_classifier --data-dir ../shared/datasets
Flags (shared with the twin): python -m lightning_version.cnn_classifier --help

Left out on purpose: logging, checkpoints, early stopping, mixed precision (the Trainer's
logger and checkpointing are switched off so that it writes nothing, like the plain twin).
"""

import time

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from shared.cli import exit_on_bad_input, parse_args
from shared.data import first, load_mnist
from shared.lightning_metrics import RecordMetrics
from shared.metrics import RunRecord
from shared.models import ConvNet

EXAMPLE = "cnn_classifier"


class LitConvNet(L.LightningModule):
    """Wraps the shared `ConvNet` model; it does not redefine it."""

    def __init__(self, lr: float, momentum: float) -> None:
        super().__init__()
        self.model = ConvNet()  # initial weights: drawn from the seeded global generator
        self.lr, self.momentum = lr, momentum

    def training_step(self, batch, batch_idx):
        images, labels = batch  # (B, 1, 28, 28), (B,); already on the device
        logits = self.model(images)  # (B, 10); dropout draws from the global generator
        loss = F.cross_entropy(logits, labels)
        self.log("train_loss", loss)  # Lightning 1.x returned {"loss": loss, "log": {...}}
        return loss  # the Trainer calls zero_grad, backward and step around this

    def validation_step(self, batch, batch_idx):  # runs under eval mode and inference_mode
        images, labels = batch
        logits = self.model(images)
        loss = F.cross_entropy(logits, labels)
        accuracy = (logits.argmax(dim=1) == labels).float().mean()
        # In validation, self.log averages over the epoch, weighted by batch size. This
        # replaces 1.x's `validation_epoch_end`, which had to average the outputs by hand.
        self.log("val_loss", loss, prog_bar=True)
        self.log("val_accuracy", accuracy, prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.SGD(self.model.parameters(), lr=self.lr, momentum=self.momentum)


def main(argv: list[str] | None = None) -> RunRecord:
    args = parse_args(EXAMPLE, argv)
    L.seed_everything(args.seed)  # before the model: its initial weights come from the global generator

    # Data: tensors in memory; the loaders are the same in both twins.
    train_set, val_set, note = load_mnist(args.data_dir)
    print(note)
    train_loader = DataLoader(first(train_set, args.limit_train), batch_size=args.batch_size, shuffle=True)
    val_loader = DataLoader(first(val_set, args.limit_val), batch_size=args.batch_size)  # no shuffle needed

    # Model; the optimizer comes from configure_optimizers, the device from the Trainer.
    model = LitConvNet(args.lr, args.momentum)

    # The loop: the Trainer trains one epoch, then validates, `max_epochs` times.
    record = RunRecord.start(EXAMPLE, "lightning", args)
    trainer = L.Trainer(
        max_epochs=args.epochs,
        accelerator=args.accelerator,  # replaces 1.x's gpus=N
        devices=1,
        fast_dev_run=args.dry_run,  # one train batch, one val batch, nothing written
        logger=False,  # the plain twin logs nothing either
        enable_checkpointing=False,  # ... nor saves checkpoints
        callbacks=[RecordMetrics(record)],
    )
    start = time.perf_counter()
    trainer.fit(model, train_loader, val_loader)
    record.seconds = time.perf_counter() - start

    print(record.summary())
    record.write(args)
    return record


if __name__ == "__main__":
    with exit_on_bad_input():
        main()
