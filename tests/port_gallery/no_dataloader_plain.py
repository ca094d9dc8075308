"""A regression loop with no DataLoader: the tensors are sliced by hand, in order."""

import torch
import torch.nn.functional as F
from torch import nn

torch.manual_seed(0)
generator = torch.Generator().manual_seed(1)
X = torch.randn(320, 10, generator=generator)
Y = X.sum(dim=1, keepdim=True)
model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
for epoch in range(2):
    for start in range(0, len(X), 64):
        x, y = X[start : start + 64], Y[start : start + 64]
        optimizer.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
    print(f"epoch {epoch} loss {loss.item():.6f}")
