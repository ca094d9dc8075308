"""A loop over dict batches, as Hugging Face-style datasets give them: {"features", "label"}."""

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset


class Records(Dataset):
    def __init__(self, count, seed):
        generator = torch.Generator().manual_seed(seed)
        self.features = torch.randn(count, 8, generator=generator)
        self.labels = (self.features[:, :4].sum(dim=1) > 0).float()

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return {"features": self.features[index], "label": self.labels[index]}


torch.manual_seed(0)
model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
loader = DataLoader(Records(160, 1), batch_size=32, shuffle=True)
optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
for _epoch in range(2):
    for batch in loader:
        optimizer.zero_grad()
        logits = model(batch["features"]).squeeze(1)
        loss = F.binary_cross_entropy_with_logits(logits, batch["label"])
        loss.backward()
        optimizer.step()
