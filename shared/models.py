"""The three models, defined once. Both twins import them; neither redefines them.

The Lightning twins wrap these `nn.Module`s in a LightningModule (the "system" pattern from
Lightning's "How to organize PyTorch into Lightning"), so a model's weights are the same
tensors whichever loop trains it.
"""

import torch
import torch.nn.functional as F
from torch import nn


class FeedForward(nn.Module):
    """The classic beginner MLP: 784 -> hidden -> ReLU -> 10 logits."""

    def __init__(self, hidden_size: int = 500, num_classes: int = 10) -> None:
        super().__init__()
        self.fc1 = nn.Linear(28 * 28, hidden_size)
        self.fc2 = nn.Linear(hidden_size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, 1, 28, 28) -> (B, 784); the tutorials write images.reshape(-1, 28*28)
        x = x.flatten(start_dim=1)
        return self.fc2(F.relu(self.fc1(x)))  # (B, 10) logits: cross_entropy applies the softmax


class ConvNet(nn.Module):
    """A small conv net with dropout, shaped like pytorch/examples' MNIST `Net` but narrower.

    Dropout makes every training step draw random numbers from torch's global generator,
    which is what makes this example the hard case for bit-for-bit parity.
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, kernel_size=3)  # (B, 1, 28, 28) -> (B, 16, 26, 26)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=3)  # -> (B, 32, 24, 24)
        self.dropout1 = nn.Dropout(0.25)
        self.fc1 = nn.Linear(32 * 12 * 12, 128)
        self.dropout2 = nn.Dropout(0.5)
        self.fc2 = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)  # (B, 32, 24, 24) -> (B, 32, 12, 12)
        x = self.dropout1(x).flatten(start_dim=1)  # -> (B, 4608)
        x = self.dropout2(F.relu(self.fc1(x)))
        return self.fc2(x)  # (B, 10) logits


class SumMLP(nn.Module):
    """An MLP with two wide hidden layers and one logit: "is the sum of the features > 0?"."""

    def __init__(self, num_features: int = 32, hidden_size: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(num_features, hidden_size),
            nn.ReLU(),
            nn.Linear(hidden_size, hidden_size),
            nn.ReLU(),
            nn.Linear(hidden_size, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(dim=1)  # (B, F) -> (B,) logits: binary_cross_entropy_with_logits
