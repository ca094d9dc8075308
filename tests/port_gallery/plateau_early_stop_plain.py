"""Regression with ReduceLROnPlateau on the validation loss, and early stopping by hand."""

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def points(count, seed):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(count, 5, generator=generator)
    return TensorDataset(
        x, x.pow(2).sum(dim=1, keepdim=True) + 0.3 * torch.randn(count, 1, generator=generator)
    )


torch.manual_seed(0)
model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 1))
train_loader = DataLoader(points(128, 1), batch_size=32, shuffle=True)
val_loader = DataLoader(points(64, 2), batch_size=64)
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=0)
best, bad_epochs = float("inf"), 0
for epoch in range(30):
    model.train()
    for x, y in train_loader:
        optimizer.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        x, y = next(iter(val_loader))
        val_loss = F.mse_loss(model(x), y).item()
    print(f"epoch {epoch} val_loss {val_loss:.6f} lr {optimizer.param_groups[0]['lr']}")
    scheduler.step(val_loss)
    if val_loss < best - 0.05:
        best, bad_epochs = val_loss, 0
    else:
        bad_epochs += 1
        if bad_epochs >= 2:
            print(f"stopped early after epoch {epoch}")
            break
