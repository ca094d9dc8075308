"""Lightning's checkpoints, by hand: saving best and last, resuming, rebuilding a model.

Mirrors the Lightning twin's two callbacks, `ModelCheckpoint(monitor="val_loss", mode="min",
filename="best")` and `ModelCheckpoint(filename="last")`, which saves after every epoch
(lightning/pytorch/callbacks/model_checkpoint.py; README "Reliability" says why not
`save_last=True`), `Trainer.fit(ckpt_path=...)` and `LightningModule.load_from_checkpoint`.
A checkpoint is a dict saved with `torch.save`: model, optimizer and scheduler states, the
epoch and step counters, the random generators' states and the hyperparameters that rebuild
the model. Step 2 (cnn_classifier) uses it.

Key prefixes: Lightning saves the LightningModule's `state_dict()`, whose keys start with
"model." because the shared network is its attribute `self.model` ("model.net.0.weight");
the plain twin saves the network's own keys ("net.0.weight"). `network_weights` strips
the prefix, so either twin's checkpoint loads into the shared `nn.Module` alone.

Loading uses `torch.load(weights_only=True)`: only tensors, numbers, strings and
containers, never arbitrary pickled objects, so a checkpoint cannot run code.
"""

import os
from pathlib import Path

import torch

from shared.checkpoint_checks import read_checkpoint
from shared.seeding import rng_states, set_rng_states


class Checkpoints:
    """Writes `last.ckpt` after every epoch and `best.ckpt` when val_loss is the lowest so far."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder).resolve()
        self.best_val_loss = float("inf")

    @property
    def best_path(self) -> Path:
        return self.folder / "best.ckpt"

    def save(self, checkpoint: dict, val_loss: float) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if val_loss < self.best_val_loss:  # strictly lower, as ModelCheckpoint's torch.lt
            self.best_val_loss = val_loss
            atomic_save(checkpoint | self.state_dict(), self.best_path)
        atomic_save(checkpoint | self.state_dict(), self.folder / "last.ckpt")

    def state_dict(self) -> dict:
        return {"best_val_loss": self.best_val_loss, "checkpoint_dir": str(self.folder)}

    def load_state_dict(self, state: dict) -> None:
        # As ModelCheckpoint: the best score carries over only into the same folder; a new
        # folder starts its own best.ckpt.
        if state["checkpoint_dir"] == str(self.folder):
            self.best_val_loss = state["best_val_loss"]


def atomic_save(checkpoint: dict, path: Path) -> None:
    """`torch.save` into a temporary file beside `path`, then rename it over `path`.

    Lightning's `_atomic_save` (lightning/fabric/utilities/cloud_io.py) does the same through
    an fsspec transaction. A rename within one folder is atomic: a run killed while writing
    leaves the previous checkpoint whole, never half of the new one.
    """
    temporary = path.with_name(f".{path.name}.part")
    torch.save(checkpoint, temporary)
    os.replace(temporary, path)


def make_checkpoint(epoch: int, global_step: int, model, optimizer, scheduler,
                    hparams: dict) -> dict:
    """Everything a resumed run needs to continue exactly where this one is now."""
    return {
        "epoch": epoch,  # the epoch just finished (0-based), as Lightning's "epoch" key
        "global_step": global_step,  # optimizer steps so far
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        # Lightning saves none; the twin adds them (shared/lightning_callbacks.py)
        "rng_states": rng_states(),
        "hyper_parameters": hparams,  # Lightning: self.save_hyperparameters()
    }


def load_checkpoint(path: str | Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def network_weights(checkpoint: dict) -> dict:
    """The shared network's weights from either twin's checkpoint, without Lightning's prefix."""
    if "model" in checkpoint:  # the plain twin's
        return checkpoint["model"]
    return {key.removeprefix("model."): value for key, value in checkpoint["state_dict"].items()}


def resume(path: str | Path, epochs: int, model, optimizer, scheduler,
           checkpoints: Checkpoints | None) -> int:
    """Load a plain-twin checkpoint into the run's objects; return the first epoch to run.

    The file is read once, and refused in one line if it cannot resume a run of `epochs`
    epochs (shared/checkpoint_checks.py), as the Lightning twin's Trainer reads it. The
    random generators are restored last, after the model was built (which drew its initial
    weights): from here on the draws continue exactly where the saved run was.
    """
    checkpoint = read_checkpoint(path, "plain", model, epochs)
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    if checkpoints:
        checkpoints.load_state_dict(checkpoint)
    set_rng_states(checkpoint["rng_states"])
    done, steps = checkpoint["epoch"] + 1, checkpoint["global_step"]
    print(f"resumed from {path}: epoch {done} done, {steps} steps")
    return checkpoint["epoch"] + 1
