"""The four models, defined once. Both twins import them; neither redefines them.

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


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which position t sees positions 0..t only."""

    def __init__(self, n_embd: int, n_head: int) -> None:
        super().__init__()
        self.n_head = n_head
        self.qkv = nn.Linear(n_embd, 3 * n_embd)  # queries, keys and values in one product
        self.proj = nn.Linear(n_embd, n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        # (B, T, C) -> (B, heads, T, C / heads): each head attends on its own slice
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # masks the future
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    """A pre-norm transformer block: x + attention(norm(x)), then x + MLP(norm(x))."""

    def __init__(self, n_embd: int, n_head: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(n_embd)
        self.attention = CausalSelfAttention(n_embd, n_head)
        self.norm2 = nn.LayerNorm(n_embd)
        self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(),
                                 nn.Linear(4 * n_embd, n_embd))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyGPT(nn.Module):
    """A decoder-only transformer, GPT-2's shape in miniature (nanoGPT's `GPT`, cut down).

    Token and position embeddings, `n_layer` pre-norm blocks, a final norm, and a head that
    shares its weights with the token embedding (weight tying: the same matrix reads a
    character in and scores it out). No dropout: every random number of a run comes from
    the initial weights, the batches' own generator and the sampler's.
    """

    def __init__(self, vocab_size: int, context: int = 64, n_layer: int = 2, n_head: int = 4,
                 n_embd: int = 64) -> None:
        super().__init__()
        self.context = context
        self.token_embedding = nn.Embedding(vocab_size, n_embd)
        self.position_embedding = nn.Embedding(context, n_embd)
        self.blocks = nn.ModuleList(Block(n_embd, n_head) for _ in range(n_layer))
        self.norm = nn.LayerNorm(n_embd)
        self.head = nn.Linear(n_embd, vocab_size, bias=False)
        self.head.weight = self.token_embedding.weight  # tied: one parameter, not two
        for module in self.modules():  # GPT-2's initialisation: small normal weights, zero biases
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        T = ids.shape[1]  # ids: (B, T) token ids
        if T > self.context:
            raise ValueError(f"{T} tokens, but this model reads at most {self.context}")
        positions = torch.arange(T, device=ids.device)
        x = self.token_embedding(ids) + self.position_embedding(positions)  # (B, T, n_embd)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))  # (B, T, vocab) logits for the next token

    @torch.no_grad()
    def generate(self, ids: torch.Tensor, new_tokens: int, generator: torch.Generator,
                 temperature: float = 1.0) -> torch.Tensor:
        """Append `new_tokens` tokens to `ids` (B, T), each drawn from the model's softmax with
        `generator`: the same generator state gives the same text."""
        for _ in range(new_tokens):
            logits = self(ids[:, -self.context:])[:, -1, :] / temperature  # (B, vocab)
            probabilities = F.softmax(logits.float(), dim=-1)
            next_id = torch.multinomial(probabilities, 1, generator=generator)  # (B, 1)
            ids = torch.cat([ids, next_id], dim=1)
        return ids
