"""channels_last_plain.py ported to Lightning; trap `dropout-first` moves dropout before pooling."""

import sys

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

TRAP = sys.argv[1] if len(sys.argv) > 1 else ""


class ConvNet(L.LightningModule):
    def __init__(self):
        super().__init__()
        middle = (
            [nn.Dropout(0.3), nn.MaxPool2d(2)]
            if TRAP == "dropout-first"
            else [nn.MaxPool2d(2), nn.Dropout(0.3)]
        )
        self.model = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), *middle, nn.Flatten(), nn.Linear(8 * 5 * 5, 4)
        )
        self.model = self.model.to(memory_format=torch.channels_last)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.model(x.to(memory_format=torch.channels_last)), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9, nesterov=True)


torch.manual_seed(0)
generator = torch.Generator().manual_seed(1)
images = torch.randn(160, 3, 10, 10, generator=generator)
labels = torch.randint(0, 4, (160,), generator=generator)
model = ConvNet()
trainer = L.Trainer(
    max_epochs=2,
    accelerator="cpu",
    devices=1,
    logger=False,
    enable_checkpointing=False,
    enable_progress_bar=False,
    enable_model_summary=False,
)
trainer.fit(model, DataLoader(TensorDataset(images, labels), batch_size=32, shuffle=True))
