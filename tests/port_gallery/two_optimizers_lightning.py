"""two_optimizers_plain.py ported to Lightning: two optimizers need manual optimisation in 2.x."""

import math
import sys

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

TRAP = sys.argv[1] if len(sys.argv) > 1 else ""


class GAN(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.generator = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
        self.discriminator = nn.Sequential(nn.Linear(2, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))
        self.automatic_optimization = False

    def training_step(self, batch, batch_idx):
        (real,) = batch
        opt_g, opt_d = self.optimizers()
        z = torch.randn(len(real), 4)
        ones, zeros = torch.ones(len(real), 1), torch.zeros(len(real), 1)
        opt_d.zero_grad()
        fake = self.generator(z).detach()
        loss_d = F.binary_cross_entropy_with_logits(
            self.discriminator(real), ones
        ) + F.binary_cross_entropy_with_logits(self.discriminator(fake), zeros)
        self.manual_backward(loss_d)
        opt_d.step()
        opt_g.zero_grad()
        loss_g = F.binary_cross_entropy_with_logits(self.discriminator(self.generator(z)), ones)
        self.manual_backward(loss_g)
        opt_g.step()

    def configure_optimizers(self):
        betas_d = (0.9, 0.999) if TRAP == "betas" else (0.5, 0.999)
        return (
            torch.optim.Adam(self.generator.parameters(), lr=2e-3, betas=(0.5, 0.999)),
            torch.optim.Adam(self.discriminator.parameters(), lr=2e-3, betas=betas_d),
        )


torch.manual_seed(0)
angles = torch.rand(128, generator=torch.Generator().manual_seed(1)) * 2 * math.pi
real_points = torch.stack([angles.cos(), angles.sin()], dim=1)
model = GAN()
trainer = L.Trainer(
    max_epochs=2,
    accelerator="cpu",
    devices=1,
    logger=False,
    enable_checkpointing=False,
    enable_progress_bar=False,
    enable_model_summary=False,
)
trainer.fit(model, DataLoader(TensorDataset(real_points), batch_size=32, shuffle=True))
