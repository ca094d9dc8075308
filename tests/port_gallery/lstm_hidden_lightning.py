"""lstm_hidden_plain.py ported to Lightning 2.x: truncated BPTT is gone from the Trainer, so the
LightningModule keeps the hidden state itself, from one training_step to the next."""

import sys

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

TRAP = sys.argv[1] if len(sys.argv) > 1 else ""
VOCAB, STEPS = 12, 10


class LanguageModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 16)
        self.lstm = nn.LSTM(16, 32, batch_first=True)
        self.head = nn.Linear(32, VOCAB)

    def forward(self, tokens, hidden=None):
        out, hidden = self.lstm(self.embed(tokens), hidden)
        return self.head(out), hidden


class Chunks(Dataset):
    """Item i is the i-th slice of STEPS tokens of every stream: already a batch."""

    def __init__(self, inputs, targets):
        self.inputs, self.targets = inputs, targets

    def __len__(self):
        return self.inputs.size(1) // STEPS

    def __getitem__(self, i):
        return self.inputs[:, i * STEPS : (i + 1) * STEPS], self.targets[
            :, i * STEPS : (i + 1) * STEPS
        ]


class LitLanguageModel(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.model = LanguageModel()

    def on_train_epoch_start(self):
        self.hidden = None

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits, hidden = self.model(x, None if TRAP == "no-carry" else self.hidden)
        self.hidden = tuple(h.detach() for h in hidden)
        return F.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=0.01)


torch.manual_seed(0)
text = torch.randint(0, VOCAB, (241,), generator=torch.Generator().manual_seed(1))
inputs, targets = text[:-1].view(4, -1), text[1:].view(4, -1)
model = LitLanguageModel()
trainer = L.Trainer(
    max_epochs=2,
    accelerator="cpu",
    devices=1,
    logger=False,
    enable_checkpointing=False,
    enable_progress_bar=False,
    enable_model_summary=False,
    gradient_clip_val=0.5,
)
trainer.fit(model, DataLoader(Chunks(inputs, targets), batch_size=None))
