"""The data and model both toy scripts share, as a loop and its port in one project would."""

import torch
from torch import nn
from torch.utils.data import Dataset


class Points(Dataset):
    """Seeded points in 8 dimensions, label 1 when their sum is positive; `noise` adds jitter
    from a generator of its own."""

    def __init__(self, count: int, seed: int, noise: torch.Generator | None = None) -> None:
        self.x = torch.randn(count, 8, generator=torch.Generator().manual_seed(seed))
        self.y = (self.x.sum(dim=1) > 0).long()
        self.noise = noise

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int):
        x = self.x[index]
        if self.noise is not None:  # a random augmentation that does not use the global generator
            x = x + 0.1 * torch.randn(8, generator=self.noise)
        return x, self.y[index]


def datasets(noise: bool) -> tuple[Points, Points]:
    generator = torch.Generator().manual_seed(7) if noise else None
    return Points(64, seed=1, noise=generator), Points(28, seed=2, noise=generator)


def model() -> nn.Module:
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 2))
