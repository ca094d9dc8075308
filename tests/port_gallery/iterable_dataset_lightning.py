"""iterable_dataset_plain.py ported to Lightning; trap `draw-before-model` draws from the global
generator between the seed and the model, as a dataset built with torch.randn there would."""

import sys

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, IterableDataset

TRAP = sys.argv[1] if len(sys.argv) > 1 else ""


class Stream(IterableDataset):
    def __init__(self, count, seed):
        self.count, self.seed = count, seed

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed)
        for _ in range(self.count):
            x = torch.randn(6, generator=generator)
            yield x, (x * torch.arange(6.0)).sum().unsqueeze(0)


class Regression(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.model = nn.Sequential(nn.Linear(6, 24), nn.GELU(), nn.Dropout(0.1), nn.Linear(24, 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.smooth_l1_loss(self.model(x), y)

    def configure_optimizers(self):
        return torch.optim.RMSprop(self.parameters(), lr=1e-3)


torch.manual_seed(0)
noise = torch.randn(1) if TRAP == "draw-before-model" else None
model = Regression()
trainer = L.Trainer(
    max_epochs=2,
    accelerator="cpu",
    devices=1,
    logger=False,
    enable_checkpointing=False,
    enable_progress_bar=False,
    enable_model_summary=False,
)
trainer.fit(model, DataLoader(Stream(192, 1), batch_size=32))
