"""hand_update_plain.py ported to Lightning with manual optimisation: the same update by hand."""

import sys

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

TRAP = sys.argv[1] if len(sys.argv) > 1 else ""


class HandUpdate(L.LightningModule):
    def __init__(self, lr):
        super().__init__()
        self.model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))
        self.lr = lr
        self.automatic_optimization = False  # training_step does backward and the update itself

    def training_step(self, batch, batch_idx):
        x, y = batch
        self.model.zero_grad()
        loss = F.cross_entropy(self.model(x), y)
        self.manual_backward(loss)
        for p in self.model.parameters():
            p.data.add_(p.grad, alpha=-self.lr)

    def configure_optimizers(self):
        return None  # no torch.optim at all


torch.manual_seed(0)
generator = torch.Generator().manual_seed(1)
X = torch.randn(192, 6, generator=generator)
Y = (X[:, 0] > 0).long() + (X[:, 1] > 0).long()
model = HandUpdate(lr=0.05 if TRAP == "lr" else 0.1)
trainer = L.Trainer(
    max_epochs=2,
    accelerator="cpu",
    devices=1,
    logger=False,
    enable_checkpointing=False,
    enable_progress_bar=False,
    enable_model_summary=False,
)
trainer.fit(model, DataLoader(TensorDataset(X, Y), batch_size=32, shuffle=True))
