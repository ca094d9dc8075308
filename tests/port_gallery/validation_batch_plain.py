"""Validation in one batch of the whole validation set, accuracy printed after every epoch."""

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def blobs(count, seed):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 3, (count,), generator=generator)
    return TensorDataset(
        torch.randn(count, 2, generator=generator) + 2 * labels.unsqueeze(1), labels
    )


torch.manual_seed(0)
model = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 3))
train_loader = DataLoader(blobs(160, 1), batch_size=32, shuffle=True)
val_loader = DataLoader(blobs(100, 2), batch_size=100)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
for epoch in range(2):
    model.train()
    for x, y in train_loader:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        for x, y in val_loader:
            logits = model(x)
            print(f"epoch {epoch} val_loss {F.cross_entropy(logits, y).item():.5f}")
