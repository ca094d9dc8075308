"""plateau_early_stop_plain.py ported: the scheduler monitors val_loss, EarlyStopping stops."""

import sys

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import EarlyStopping
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

TRAP = sys.argv[1] if len(sys.argv) > 1 else ""


def points(count, seed):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(count, 5, generator=generator)
    return TensorDataset(
        x, x.pow(2).sum(dim=1, keepdim=True) + 0.3 * torch.randn(count, 1, generator=generator)
    )


class Regression(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.mse_loss(self.model(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.mse_loss(self.model(x), y))

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=0.5, patience=1 if TRAP == "patience" else 0
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "monitor": "val_loss"},
        }


torch.manual_seed(0)
model = Regression()
stop = EarlyStopping(monitor="val_loss", min_delta=0.05, patience=2)
trainer = L.Trainer(
    max_epochs=30,
    accelerator="cpu",
    devices=1,
    logger=False,
    enable_checkpointing=False,
    enable_progress_bar=False,
    enable_model_summary=False,
    callbacks=[stop],
)
trainer.fit(
    model,
    DataLoader(points(128, 1), batch_size=32, shuffle=True),
    DataLoader(points(64, 2), batch_size=64),
)
