"""A stream of samples from an IterableDataset: no length, no shuffle, each pass the same stream."""

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, IterableDataset


class Stream(IterableDataset):
    def __init__(self, count, seed):
        self.count, self.seed = count, seed

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed)
        for _ in range(self.count):
            x = torch.randn(6, generator=generator)
            yield x, (x * torch.arange(6.0)).sum().unsqueeze(0)


torch.manual_seed(0)
model = nn.Sequential(nn.Linear(6, 24), nn.GELU(), nn.Dropout(0.1), nn.Linear(24, 1))
optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3)
for _epoch in range(2):
    model.train()
    for x, y in DataLoader(Stream(192, 1), batch_size=32):
        optimizer.zero_grad()
        loss = F.smooth_l1_loss(model(x), y)
        loss.backward()
        optimizer.step()
