"""An LSTM language model: the hidden state carries over from batch to batch (truncated BPTT)."""

import torch
import torch.nn.functional as F
from torch import nn

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


torch.manual_seed(0)
text = torch.randint(0, VOCAB, (241,), generator=torch.Generator().manual_seed(1))
inputs, targets = text[:-1].view(4, -1), text[1:].view(4, -1)  # 4 streams of 60 tokens
model = LanguageModel()
optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
for _epoch in range(2):
    hidden = None
    for start in range(0, inputs.size(1), STEPS):
        x, y = inputs[:, start : start + STEPS], targets[:, start : start + STEPS]
        optimizer.zero_grad()
        logits, hidden = model(x, hidden)
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        optimizer.step()
        hidden = tuple(h.detach() for h in hidden)  # keep the state, cut the graph
