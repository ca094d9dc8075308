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


def seed_worker(worker_id: int) -> None:
    """DataLoader `worker_init_fn`: seed each worker's generators, as `seed_everything(workers=True)` does.

    torch already seeds each worker's torch generator from the loader's base seed; Python's
    `random` and NumPy are left alone, so two workers would draw the same "random" numbers.
    Lightning's `pl_worker_init_function` derives their seeds from torch's per-worker seed
    (mixing in the process rank, for DDP); this does the same job more simply, so the
    numbers a worker draws differ from Lightning's. The examples' datasets draw no random
    numbers in workers, so the curves still match bit for bit; it matters for your own
    random augmentations.
    """
    worker_seed = torch.initial_seed() % 2**32
    random.seed(worker_seed)
    np.random.seed(worker_seed)


def use_deterministic_algorithms(enabled: bool) -> None:
    """What `Trainer(deterministic=True)` switches on: deterministic kernels, or an error."""
    torch.use_deterministic_algorithms(enabled)
    torch.backends.cudnn.benchmark = False  # autotuning picks kernels by timing: not repeatable
    if enabled:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"  # CUDA matmuls need this to be deterministic


def rng_states() -> dict:
    """Every global generator's state, for a checkpoint: resuming must continue the same draws.

    Only tensors, numbers and strings, so `torch.load(weights_only=True)` (the safe default
    since torch 2.6) accepts the checkpoint: NumPy's key array travels as a tensor.
    """
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    numpy_state = [name, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached_gaussian]
    states = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": numpy_state}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    """Put back what `rng_states()` saved."""
    torch.set_rng_state(states["torch"])
    random.setstate(states["python"])
    name, keys, position, has_gauss, cached_gaussian = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached_gaussian))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
