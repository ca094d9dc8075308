"""validation_batch_plain.py ported to Lightning; trap `val-batches` validates in batches of 20,
trap `crash` fails at the sixth training step."""

import sys

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

TRAP = sys.argv[1] if len(sys.argv) > 1 else ""


def blobs(count, seed):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 3, (count,), generator=generator)
    return TensorDataset(
        torch.randn(count, 2, generator=generator) + 2 * labels.unsqueeze(1), labels
    )


class Classifier(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.model = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 3))

    def training_step(self, batch, batch_idx):
        x, y = batch
        assert not (TRAP == "crash" and self.global_step == 5), "a bug at the sixth step"
        return F.cross_entropy(self.model(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        if not self.trainer.sanity_checking:
            loss = F.cross_entropy(self.model(x), y)
            print(f"epoch {self.current_epoch} val_loss {loss.item():.5f}")

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


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
trainer.fit(
    model,
    DataLoader(blobs(160, 1), batch_size=32, shuffle=True),
    DataLoader(blobs(100, 2), batch_size=20 if TRAP == "val-batches" else 100),
)
