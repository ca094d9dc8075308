"""Step 1 of 3: the classic MNIST 784-500-10 MLP, trained by a LightningModule and a Trainer.

Twin: plain_pytorch/mnist_feedforward.py writes the same training loop by hand;
tests/test_parity.py proves both give the same per-step losses, bit for bit. Read the two
side by side, `diff -y -W 210 plain_pytorch/mnist_feedforward.py
lightning_version/mnist_feedforward.py`: what is missing here is what the Trainer does.

This step teaches: `training_step` and the `Trainer` in place of the hand-written loop;
`validation_step` with `self.log`; the device from `Trainer(accelerator=...)`; TensorBoard
through `TensorBoardLogger`; the default progress bar; `fast_dev_run`.

Run:  python -m lightning_version.mnist_feedforward

Left out on purpose, for the later steps: dropout, a scheduler, checkpoints, test and
predict (step 2, cnn_classifier.py); a custom Dataset, worker seeding, early stopping, the
finders, clipping, mixed precision and accumulation (step 3, sum_dataset.py).
"""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch.utils.data import DataLoader

from shared import process_setup, run_end
from shared.data import first, load_mnist
from shared.flags import parse_args
from shared.lightning_callbacks import RecordMetrics
from shared.models import FeedForward
from shared.run_folders import claim_run_folders
from shared.run_record import RunRecord

EXAMPLE = "mnist_feedforward"


class LitFeedForward(L.LightningModule):
    """Wraps the shared `FeedForward` model (it does not redefine it) and says how to train it."""

    def __init__(self, hidden_size: int, lr: float) -> None:
        super().__init__()
        self.model = FeedForward(hidden_size)  # the same network the plain twin trains
        self.lr = lr

    def training_step(self, batch, batch_idx):
        images, labels = batch  # already on the device the Trainer picked
        logits = self.model(images)  # (B, 10)
        loss = F.cross_entropy(logits, labels)
        self.log("train_loss", loss)  # to TensorBoard; 1.x returned {"loss": loss, "log": {...}}
        return loss  # the Trainer calls zero_grad, backward and step around this

    def validation_step(self, batch, batch_idx):  # in eval mode, under torch.no_grad()
        images, labels = batch
        logits = self.model(images)
        # self.log keeps an epoch mean, weighted by batch size (1.x: validation_epoch_end, by hand)
        self.log("val_loss", F.cross_entropy(logits, labels), prog_bar=True)
        self.log("val_accuracy", (logits.argmax(dim=1) == labels).float().mean(), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.model.parameters(), lr=self.lr)


def main(argv: list[str] | None = None) -> RunRecord:
    args = parse_args(EXAMPLE, "lightning", argv, about=__doc__)
    L.seed_everything(args.seed)  # seeds torch (and Python, NumPy): same seed, same initial weights

    # Data: MNIST as normalised tensors in memory; the DataLoader cuts them into batches.
    train_set, val_set, _, note = load_mnist(args.data_dir, args.dataset)
    print(note)
    train_loader = DataLoader(first(train_set, args.limit_train), batch_size=args.batch_size,
                              shuffle=True)
    val_loader = DataLoader(first(val_set, args.limit_val), batch_size=args.batch_size)

    # Model; the Trainer puts it on its device, and the optimizer comes from configure_optimizers.
    model = LitFeedForward(args.hidden_size, args.lr)

    # The loop: the Trainer trains one epoch, then validates, `max_epochs` times.
    record = RunRecord.start(EXAMPLE, "lightning", args)  # its losses, accuracies and time
    run = claim_run_folders(args, EXAMPLE, "lightning")  # LOG_DIR/EXAMPLE/lightning/version_N
    trainer = L.Trainer(
        max_epochs=args.epochs,
        accelerator=args.accelerator,  # "auto": CUDA, else MPS, else CPU; replaces 1.x's gpus=N
        devices=1,
        fast_dev_run=args.dry_run,  # one train batch, one val batch, nothing written
        logger=TensorBoardLogger(f"{args.log_dir}/{EXAMPLE}", "lightning", version=run.version,
                                 default_hp_metric=False),  # version_N, claimed above
        log_every_n_steps=1,  # every step's train_loss reaches TensorBoard (default: every 50th)
        enable_progress_bar=not args.no_progress, enable_model_summary=False,  # no layer table
        enable_checkpointing=False,  # checkpoints are step 2's lesson
        callbacks=[RecordMetrics(record)],  # fills the record from what Lightning computed
    )
    trainer.fit(model, train_loader, val_loader)
    return record.finish(args)  # prints the summary line (shared/run_record.py)


if __name__ == "__main__":
    with run_end.in_one_line(), process_setup.in_place():
        main()
