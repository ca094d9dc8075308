"""Seeding by hand: what `lightning.seed_everything(seed)` does for the global generators."""

import os
import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators, as `L.seed_everything` does.

    After this call, the next numbers drawn from torch's global generator are the same in
    every twin, so the model's initial weights are the same. Every later draw (dropout
    masks, the shuffling seed a DataLoader takes at each `iter()`) must then happen in the
    same order in every twin: that is the whole parity story (docs/parity.md).
    """
    os.environ["PL_GLOBAL_SEED"] = str(seed)  # Lightning records the seed here too
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def seed_worker(worker_id: int, rank: int = 0) -> None:
    """DataLoader `worker_init_fn`: reseed a worker's generators as `seed_everything(seed,
    workers=True)` does.

    torch already seeds each worker's torch, Python and NumPy generators from the loader's
    base seed (drawn from the global generator at `iter()`) plus the worker id. Lightning's
    `pl_worker_init_function` reseeds all three from that seed mixed with the worker id and
    the process rank, so DDP processes never share augmentations. This is the same recipe
    (lightning/fabric/utilities/seed.py), so a worker draws the same numbers in both twins;
    tests/test_features.py checks it.
    """
    base_seed = torch.initial_seed() - worker_id  # torch gave this worker base_seed + worker_id
    torch_seed, python_high, python_low, _ = _seed_sequence(base_seed, worker_id, rank, count=4)
    torch.manual_seed(torch_seed)
    random.seed((python_high << 32) | python_low)
    np.random.seed(np.random.SeedSequence([base_seed, worker_id, rank]).generate_state(4))


def _seed_sequence(base_seed: int, worker_id: int, rank: int, count: int) -> list[int]:
    """Mix base seed, worker id and rank into one 64-bit number (MurmurHash3's finaliser), then
    take LCG steps from it."""
    mask = (1 << 64) - 1
    mixed = (base_seed << 32) | (worker_id << 16) | rank
    mixed ^= mixed >> 33
    mixed = (mixed * 0xFF51AFD7ED558CCD) & mask
    mixed ^= mixed >> 33
    mixed = (mixed * 0xC4CEB9FE1A85EC53) & mask
    mixed ^= mixed >> 33
    seeds = []
    for _ in range(count):
        mixed = (mixed * 6364136223846793005 + 1) & mask  # Knuth's LCG constant, c = 1, m = 2**64
        seeds.append(mixed)
    return seeds


def use_deterministic_algorithms(enabled: bool) -> None:
    """What `Trainer(deterministic=True)` switches on: deterministic kernels, or an error."""
    torch.use_deterministic_algorithms(enabled)
    torch.backends.cudnn.benchmark = False  # autotuning picks kernels by timing: not repeatable
    if enabled:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"  # deterministic CUDA matmuls need it


def rng_states() -> dict:
    """Every global generator's state, for a checkpoint: resuming must continue the same draws.

    Only tensors, numbers and strings, so `torch.load(weights_only=True)` (the safe default
    since torch 2.6) accepts the checkpoint: NumPy's key array travels as a tensor.
    """
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    keys = torch.from_numpy(keys.astype(np.int64))
    numpy_state = [name, keys, position, has_gauss, cached_gaussian]
    states = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": numpy_state}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    """Put back what `rng_states()` saved."""
    torch.set_rng_state(states["torch"])
    random.setstate(states["python"])
    name, keys, position, has_gauss, cached_gaussian = states["numpy"]
    keys = keys.numpy().astype(np.uint32)
    np.random.set_state((name, keys, position, has_gauss, cached_gaussian))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
