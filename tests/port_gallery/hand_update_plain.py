"""A loop without torch.optim: the weights are updated by hand, `p.data.add_(p.grad, alpha=-lr)`."""

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
generator = torch.Generator().manual_seed(1)
X = torch.randn(192, 6, generator=generator)
Y = (X[:, 0] > 0).long() + (X[:, 1] > 0).long()
model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))
loader = DataLoader(TensorDataset(X, Y), batch_size=32, shuffle=True)
lr = 0.1
for _epoch in range(2):
    for x, y in loader:
        model.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        for p in model.parameters():
            p.data.add_(p.grad, alpha=-lr)
