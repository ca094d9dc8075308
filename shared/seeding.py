"""Seeding by hand: what `lightning.seed_everything(seed)` does for the global generators."""

import os
import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators, as `L.seed_everything` does.

    After this call, the next numbers drawn from torch's global generator are the same in
    both twins, so the model's initial weights are the same. Every later draw (dropout
    masks, the shuffling seed a DataLoader takes at each `iter()`) must then happen in the
    same order in both twins: that is the whole parity story (README, "Why the curves match").
    """
    os.environ["PL_GLOBAL_SEED"] = str(seed)  # Lightning records the seed here too
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
