"""Sequences of different lengths, padded into batches by a custom collate_fn."""

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader


def sequences(count, seed):
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, 13, (count,), generator=generator)
    items = [torch.randint(1, 20, (int(n),), generator=generator) for n in lengths]
    return [(tokens, int(tokens.float().mean() > 10)) for tokens in items]


def pad_collate(items):
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


torch.manual_seed(0)
model = BagOfWords()
loader = DataLoader(sequences(160, 1), batch_size=16, shuffle=True, collate_fn=pad_collate)
optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
for _epoch in range(2):
    for tokens, lengths, labels in loader:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(tokens, lengths), labels)
        loss.backward()
        optimizer.step()
