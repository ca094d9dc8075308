"""accumulation_plain.py ported to Lightning: accumulate_grad_batches=2 divides and waits."""

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
        self.model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.mse_loss(self.model(x), y)  # the Trainer divides it by accumulate_grad_batches

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


torch.manual_seed(0)
generator = torch.Generator().manual_seed(1)
X = torch.randn(256, 4, generator=generator)
Y = X @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
model = Regression()
trainer = L.Trainer(
    max_epochs=2,
    accelerator="cpu",
    devices=1,
    logger=False,
    enable_checkpointing=False,
    enable_progress_bar=False,
    enable_model_summary=False,
    accumulate_grad_batches=1 if TRAP == "no-accumulation" else 2,
)
trainer.fit(model, DataLoader(TensorDataset(X, Y), batch_size=32, shuffle=True))
