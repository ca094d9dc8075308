"""A tiny GAN: two models, two optimizers, the discriminator's step then the generator's."""

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
angles = torch.rand(128, generator=torch.Generator().manual_seed(1)) * 2 * math.pi
real_points = torch.stack([angles.cos(), angles.sin()], dim=1)  # points on a circle
generator = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
discriminator = nn.Sequential(nn.Linear(2, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))
opt_g = torch.optim.Adam(generator.parameters(), lr=2e-3, betas=(0.5, 0.999))
opt_d = torch.optim.Adam(discriminator.parameters(), lr=2e-3, betas=(0.5, 0.999))
loader = DataLoader(TensorDataset(real_points), batch_size=32, shuffle=True)
for _epoch in range(2):
    for (real,) in loader:
        z = torch.randn(len(real), 4)
        ones, zeros = torch.ones(len(real), 1), torch.zeros(len(real), 1)
        opt_d.zero_grad()
        fake = generator(z).detach()
        loss_d = F.binary_cross_entropy_with_logits(
            discriminator(real), ones
        ) + F.binary_cross_entropy_with_logits(discriminator(fake), zeros)
        loss_d.backward()
        opt_d.step()
        opt_g.zero_grad()
        loss_g = F.binary_cross_entropy_with_logits(discriminator(generator(z)), ones)
        loss_g.backward()
        opt_g.step()
