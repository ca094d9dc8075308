"""loss_module_plain.py ported to Lightning; `... TRAP` puts one mistake in."""

import sys

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

TRAP = sys.argv[1] if len(sys.argv) > 1 else ""


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3),
            *([nn.BatchNorm2d(8)] if TRAP == "batchnorm" else []),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Dropout(0.5 if TRAP == "dropout-p" else 0.25),
        )
        self.classifier = nn.Linear(8 * 5 * 5, 10)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


def images(count, seed):
    generator = torch.Generator().manual_seed(seed)
    return TensorDataset(
        torch.randn(count, 1, 12, 12, generator=generator),
        torch.randint(0, 10, (count,), generator=generator),
    )


class LitNet(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.model = Net()
        self.criterion = nn.CrossEntropyLoss(reduction="sum" if TRAP == "reduction-sum" else "mean")

    def training_step(self, batch, batch_idx):
        x, y = batch
        return self.criterion(self.model(x), y)

    def on_validation_epoch_start(self):
        self.total = 0.0

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.total += self.criterion(self.model(x), y).item() * len(y)

    def on_validation_epoch_end(self):
        if not self.trainer.sanity_checking:
            print(f"epoch {self.current_epoch} val_loss {self.total / 64:.6f}")

    def configure_optimizers(self):
        optimizer = torch.optim.Adadelta(self.parameters(), lr=1.0)
        return [optimizer], [torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)]


torch.manual_seed(0)
model = LitNet()
trainer = L.Trainer(
    max_epochs=2,
    accelerator="cpu",
    devices=1,
    logger=False,
    enable_checkpointing=False,
    enable_progress_bar=False,
    enable_model_summary=False,
    precision="64-true" if TRAP == "precision-64" else "32-true",
)
trainer.fit(
    model,
    DataLoader(images(256, 1), batch_size=32, shuffle=True),
    DataLoader(images(64, 2), batch_size=32),
)
