"""custom_collate_plain.py ported to Lightning: the same collate_fn on the same DataLoader."""

import sys

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

TRAP = sys.argv[1] if len(sys.argv) > 1 else ""


def sequences(count, seed):
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, 13, (count,), generator=generator)
    items = [torch.randint(1, 20, (int(n),), generator=generator) for n in lengths]
    return [(tokens, int(tokens.float().mean() > 10)) for tokens in items]


def pad_collate(items):
    items = sorted(items, key=lambda item: -len(item[0])) if TRAP == "sorted" else items
    lengths = torch.tensor([len(tokens) for tokens, _ in items])
    padded = nn.utils.rnn.pad_sequence([tokens for tokens, _ in items], batch_first=True)
    return padded, lengths, torch.tensor([label for _, label in items])


class BagOfWords(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(20, 8, padding_idx=0)
        self.head = nn.Linear(8, 2)

    def forward(self, tokens, lengths):
        return self.head(self.embed(tokens).sum(dim=1) / lengths.unsqueeze(1))


class LitBagOfWords(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.model = BagOfWords()

    def training_step(self, batch, batch_idx):
        tokens, lengths, labels = batch
        return F.cross_entropy(self.model(tokens, lengths), labels)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)


torch.manual_seed(0)
model = LitBagOfWords()
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
    model, DataLoader(sequences(160, 1), batch_size=16, shuffle=True, collate_fn=pad_collate)
)
