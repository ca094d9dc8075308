"""The same training as plain_loop.py, ported to Lightning, for tests/test_check_port.py."""

import argparse

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch.utils.data import DataLoader
from toy import datasets, model

parser = argparse.ArgumentParser()
parser.add_argument("--trap", default="none", choices=["none", "accumulate"])
parser.add_argument("--noise", action="store_true")
parser.add_argument("--clip", type=float)
parser.add_argument("--log-dir")
parser.add_argument("--epochs", type=int, default=2)
args = parser.parse_args()


class Port(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = model()

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.cross_entropy(self.net(x), y))

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)
        return [optimizer], [torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)]


L.seed_everything(0, verbose=False)
net = Port()
train_set, val_set = datasets(args.noise)
logger = TensorBoardLogger(args.log_dir, name="", version="") if args.log_dir else False
trainer = L.Trainer(max_epochs=args.epochs, accelerator="cpu", devices=1, logger=logger,
                    log_every_n_steps=1, enable_progress_bar=False, enable_model_summary=False,
                    enable_checkpointing=False, gradient_clip_val=args.clip,
                    accumulate_grad_batches=2 if args.trap == "accumulate" else 1)
trainer.fit(net, DataLoader(train_set, batch_size=16, shuffle=True),
            DataLoader(val_set, batch_size=12))
