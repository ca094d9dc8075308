"""no_dataloader_plain.py ported to Lightning: a DataLoader with a generator of its own, so that its
iter() leaves the global generator (and so dropout) alone. Trap `global-generator` drops it."""

import sys

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

TRAP = sys.argv[1] if len(sys.argv) > 1 else ""


class Regression(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.mse_loss(self.model(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


torch.manual_seed(0)
generator = torch.Generator().manual_seed(1)
X = torch.randn(320, 10, generator=generator)
Y = X.sum(dim=1, keepdim=True)
model = Regression()
loader = DataLoader(
    TensorDataset(X, Y),
    batch_size=64,
    generator=None if TRAP == "global-generator" else torch.Generator(),
)
trainer = L.Trainer(
    max_epochs=2,
    accelerator="cpu",
    devices=1,
    logger=False,
    enable_checkpointing=False,
    enable_progress_bar=False,
    enable_model_summary=False,
)
trainer.fit(model, loader)
