"""A small CNN in channels_last memory format, model and batches alike."""

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
generator = torch.Generator().manual_seed(1)
images = torch.randn(160, 3, 10, 10, generator=generator)
labels = torch.randint(0, 4, (160,), generator=generator)
model = nn.Sequential(
    nn.Conv2d(3, 8, 3, padding=1),
    nn.ReLU(),
    nn.MaxPool2d(2),
    nn.Dropout(0.3),
    nn.Flatten(),
    nn.Linear(8 * 5 * 5, 4),
)
model = model.to(memory_format=torch.channels_last)
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
for _epoch in range(2):
    for x, y in DataLoader(TensorDataset(images, labels), batch_size=32, shuffle=True):
        x = x.to(memory_format=torch.channels_last)
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
