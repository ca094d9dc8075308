"""dict_batches_plain.py ported to Lightning: training_step gets the same dict."""

import sys

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

TRAP = sys.argv[1] if len(sys.argv) > 1 else ""


class Records(Dataset):
    def __init__(self, count, seed):
        generator = torch.Generator().manual_seed(seed)
        self.features = torch.randn(count, 8, generator=generator)
        self.labels = (self.features[:, :4].sum(dim=1) > 0).float()

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return {"features": self.features[index], "label": self.labels[index]}


class Classifier(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))

    def training_step(self, batch, batch_idx):
        logits = self.model(batch["features"]).squeeze(1)
        return F.binary_cross_entropy_with_logits(logits, batch["label"])

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=3e-3, weight_decay=0.01)


torch.manual_seed(0)
model = Classifier()
trainer = L.Trainer(
    max_epochs=2,
    accelerator="cpu",
    devices=1,
    logger=False,
    enable_checkpointing=False,
    enable_progress_bar=False,
    enable_model_summary=False,
)
trainer.fit(model, DataLoader(Records(160, 1), batch_size=32, shuffle=TRAP != "no-shuffle"))
