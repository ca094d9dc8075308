"""Gradient accumulation by hand: each loss divided by 2, one optimizer step every 2 batches."""

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

ACCUMULATE = 2
torch.manual_seed(0)
generator = torch.Generator().manual_seed(1)
X = torch.randn(256, 4, generator=generator)
Y = X @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
for _epoch in range(2):
    for i, (x, y) in enumerate(DataLoader(TensorDataset(X, Y), batch_size=32, shuffle=True)):
        loss = F.mse_loss(model(x), y) / ACCUMULATE
        loss.backward()
        if (i + 1) % ACCUMULATE == 0:
            optimizer.step()
            optimizer.zero_grad()
