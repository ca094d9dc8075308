"""Lightning's checkpoints, by hand: saving best and last, resuming, rebuilding a model.

Mirrors the Lightning twin's two callbacks, `ModelCheckpoint(monitor="val_loss", mode="min",
filename="best")` and `ModelCheckpoint(filename="last")`, which saves after every epoch
(lightning/pytorch/callbacks/model_checkpoint.py; docs/reliability.md says why not
`save_last=True`), `Trainer.fit(ckpt_path=...)` and `LightningModule.load_from_checkpoint`.
A checkpoint is a dict saved with `torch.save`: model, optimizer and scheduler states, the
epoch and step counters, the random generators' states and the flags a resumed run must share
(`run_flags`). Step 2 (cnn_classifier) uses it.

Key prefixes: Lightning saves the LightningModule's `state_dict()`, whose keys start with
"model." because the shared network is its attribute `self.model` ("model.net.0.weight");
the plain twin saves the network's own keys ("net.0.weight"). `network_weights` strips
the prefix, so either twin's checkpoint loads into the shared `nn.Module` alone.

Both twins write and read the files through shared/checkpoint_files.py: each save goes to a
temporary file beside its target and is renamed over it (`atomic_save`), so a kill or a full
disk keeps the previous file whole; loading uses `torch.load(weights_only=True)` (only
tensors, numbers, strings and containers, so a checkpoint cannot run code) and refuses, in
one line, a checkpoint that cannot resume this run.
"""

from pathlib import Path

import torch

from shared.checkpoint_files import atomic_save, load_checkpoint_checked
from shared.seeding import rng_states, set_rng_states


class Checkpoints:
    """Writes `last.ckpt` after every epoch and `best.ckpt` when val_loss is the lowest so far.

    `save(path, checkpoint)` writes one file: `atomic_save` here; the Fabric twin, which also
    keeps its checkpoints this way, passes `fabric.save`.
    """

    def __init__(self, folder: str | Path, save=atomic_save) -> None:
        self.folder = Path(folder).resolve()
        self.best_val_loss = float("inf")
        self.write = save

    @property
    def best_path(self) -> Path:
        return self.folder / "best.ckpt"

    def save(self, checkpoint: dict, val_loss: float) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if val_loss < self.best_val_loss:  # strictly lower, as ModelCheckpoint's torch.lt
            self.best_val_loss = val_loss
            self.write(self.best_path, checkpoint | self.state_dict())
        self.write(self.folder / "last.ckpt", checkpoint | self.state_dict())

    def state_dict(self) -> dict:
        return {"best_val_loss": self.best_val_loss, "checkpoint_dir": str(self.folder)}

    def load_state_dict(self, state: dict) -> None:
        # As ModelCheckpoint: the best score carries over only into the same folder; a new
        # folder starts its own best.ckpt.
        if state["checkpoint_dir"] == str(self.folder):
            self.best_val_loss = state["best_val_loss"]


def make_checkpoint(epoch: int, global_step: int, model, optimizer, scheduler,
                    run_flags: dict) -> dict:
    """Everything a resumed run needs to continue exactly where this one is now."""
    return {
        "epoch": epoch,  # the epoch just finished (0-based), as Lightning's "epoch" key
        "global_step": global_step,  # optimizer steps so far
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        # Lightning saves none; the twin adds them (shared/lightning_callbacks.py)
        "rng_states": rng_states(),
        # --lr, --seed, ...: resuming with others is refused (Lightning: the plugin adds them)
        "run_flags": run_flags,
    }


def load_checkpoint_unchecked(path: str | Path) -> dict:
    """Load a checkpoint this run wrote itself (best.ckpt, to test with), with no checks.

    Only `torch.load(weights_only=True)`, which runs no code. A file a user passes with
    `--resume` is read by `load_checkpoint_checked` (shared/checkpoint_files.py) instead.
    """
    return torch.load(path, map_location="cpu", weights_only=True)


def network_weights(checkpoint: dict) -> dict:
    """The shared network's weights from either twin's checkpoint, without Lightning's prefix."""
    if "model" in checkpoint:  # the plain twin's
        return checkpoint["model"]
    return {key.removeprefix("model."): value for key, value in checkpoint["state_dict"].items()}


def resume(args, model, optimizer, scheduler, checkpoints: Checkpoints | None) -> int:
    """Load the plain twin's `--resume` checkpoint into the run's objects; return the first epoch.

    The file is read once, and refused in one line if it cannot resume this run
    (shared/checkpoint_files.py), as the Lightning twin's Trainer reads it. The random
    generators are restored last, after the model was built (which drew its initial
    weights): from here on the draws continue exactly where the saved run was.
    """
    path = args.resume
    checkpoint = load_checkpoint_checked(path, "plain", model, args)
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    if checkpoints:
        checkpoints.load_state_dict(checkpoint)
    set_rng_states(checkpoint["rng_states"])
    done, steps = checkpoint["epoch"] + 1, checkpoint["global_step"]
    print(f"resumed from {path}: epoch {done} done, {steps} steps")
    return checkpoint["epoch"] + 1
