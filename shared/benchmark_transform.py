"""Benchmark: torchvision's per-sample transform vs the compute of one MLP epoch.

Prints the measured ratios behind the comment in `shared/data.py`. Run:
    python -m shared.benchmark_transform --data-dir ../shared/datasets
One epoch of the training images, batch 100, shuffled, three ways:
  (a) a DataLoader over a torchvision-style dataset: for every image, every epoch,
      uint8 -> PIL image -> ToTensor -> Normalize (what `MNIST(..., transform=...)` does);
  (b) a DataLoader over the tensors `shared.data` normalised once;
  (c) the mnist_feedforward model's training compute alone (Adam, on ready batches).
"""

import argparse
import time

import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from shared.data import MNIST_MEAN, MNIST_STD, load_mnist
from shared.models import FeedForward


class PerSampleTransform(Dataset):
    """uint8 images made into tensors one by one, as torchvision's MNIST dataset does."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels
        self.transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.images[i].numpy())), int(self.labels[i])


def seconds(work) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", default="./data")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    train_set = load_mnist(args.data_dir, download=False).train
    images, labels = train_set.tensors
    raw = (images[:, 0] * MNIST_STD + MNIST_MEAN).mul(255).round().to(torch.uint8)  # back to (N, 28, 28) uint8

    torch.manual_seed(0)
    model = FeedForward()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = list(DataLoader(train_set, batch_size=100, shuffle=True))

    def train() -> None:
        for x, y in batches:
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()

    print(f"{len(raw):,} images, batch 100, {torch.get_num_threads()} threads")
    for _ in range(args.repeats):
        per_sample = seconds(lambda: list(DataLoader(PerSampleTransform(raw, labels), batch_size=100, shuffle=True)))
        in_memory = seconds(lambda: list(DataLoader(train_set, batch_size=100, shuffle=True)))
        compute = seconds(train)
        print(
            f"per-sample transform loader {per_sample:.3f} s, in-memory loader {in_memory:.3f} s, "
            f"MLP epoch compute {compute:.3f} s: transform / compute = {per_sample / compute:.1f}x"
        )


if __name__ == "__main__":
    main()
