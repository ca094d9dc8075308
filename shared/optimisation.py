"""Step 4's optimiser recipe, as nanoGPT's train.py writes it: AdamW's two parameter groups
and the learning rate's warmup-then-cosine shape. All three twins call these.

- Weight decay pulls weights toward zero, which helps the matrices of the linear layers;
  applied to biases, LayerNorm's scales and the embeddings it only hurts. So AdamW gets
  two groups: the 2-D weights of the linear layers decay, the rest do not (the tied
  head/embedding matrix is an embedding: it does not).
- The rate rises linearly from 0 over `warmup_steps`, then falls along half a cosine to
  `min_ratio` of its peak at `max_steps`. `warmup_cosine` gives the factor for one step: the
  plain and Fabric twins set `lr * factor` into the optimizer before each step by hand; the
  Lightning twin hands the same function to a `LambdaLR`, which computes `lr * factor` too,
  so the rates are the same floats.
"""

import math

from torch import nn


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW's groups: decay for the linear layers' matrices, none for biases, norms and
    embeddings (each parameter once: the tied head is the token embedding)."""
    embeddings = {id(module.weight) for module in model.modules()
                  if isinstance(module, nn.Embedding)}
    decay, no_decay = [], []
    for parameter in model.parameters():  # a shared (tied) parameter is listed once
        if parameter.dim() >= 2 and id(parameter) not in embeddings:
            decay.append(parameter)
        else:
            no_decay.append(parameter)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def warmup_cosine(step: int, warmup_steps: int, max_steps: int, min_ratio: float = 0.1) -> float:
    """The factor of the peak rate for optimizer step `step` (from 0)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps  # linear warmup; never 0, so step 0 learns too
    progress = (step - warmup_steps) / max(1, max_steps - warmup_steps)  # 0 -> 1
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
