"""Checkpoint files on disk: written atomically, read once, refused when they cannot resume.

Every twin of step 2 goes through here. The plain twin saves with `atomic_save` and resumes
with `load_checkpoint_checked` (by_hand/checkpointing.py); the Lightning twin's Trainer
and the Fabric twin's `fabric.save`/`fabric.load` do both through `CheckedCheckpointIO`
(shared/checkpoint_plugin.py), Lightning's own extension point for checkpoint IO. So a kill
or a full disk during a save leaves the previous file whole, and a refusal is one line
(`BadInput`) in every twin.
"""

import argparse
import os
from pathlib import Path

import torch

from shared.run_end import BadInput

# What each twin's checkpoint must hold to resume a run exactly where it stopped. The Fabric
# twin saves what the plain twin saves, and says so under "twin", so each twin resumes its own.
NEEDED = {
    "plain": ("model", "optimizer", "scheduler", "rng_states", "epoch", "global_step", "run_flags"),
    "fabric": ("model", "optimizer", "scheduler", "rng_states", "epoch", "global_step", "run_flags",
               "twin"),
    "lightning": ("state_dict", "optimizer_states", "lr_schedulers", "loops", "epoch",
                  "global_step", "rng_states", "run_flags"),
}
WROTE_IT = "pass a last.ckpt or best.ckpt that --checkpoint-dir wrote"
# The flags a checkpoint fixes: resuming with another value of one of them would not continue
# that run. Every twin saves them under the checkpoint's "run_flags": the plain twin in its
# `make_checkpoint`, the Lightning and Fabric twins through their checkpoint plugin.
FIXED_BY_CHECKPOINT = ("lr", "momentum", "lr_step_gamma", "batch_size", "seed", "dataset")


def run_flags(args: argparse.Namespace) -> dict:
    """The flags of this run that a checkpoint fixes, to save in it under "run_flags"."""
    return {flag: getattr(args, flag) for flag in FIXED_BY_CHECKPOINT}


def atomic_save(path: str | Path, checkpoint: dict) -> None:
    """`torch.save` into a temporary file beside `path`, then rename it over `path`.

    A rename within one folder is atomic, so a run killed while writing, or a disk that
    fills up, leaves the previous checkpoint whole, never half of the new one. Beside the
    target, not in $TMPDIR: a rename across filesystems is a copy, which a kill can cut short.
    A write that fails removes its temporary file and ends the run in one line.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.part")
    try:
        torch.save(checkpoint, temporary)
        os.replace(temporary, path)
    except (OSError, RuntimeError) as error:  # torch.save reports a full disk as a RuntimeError
        temporary.unlink(missing_ok=True)
        reason = getattr(error, "strerror", None) or str(error).splitlines()[0]
        raise OSError(f"cannot write the checkpoint {path} ({reason}); the previous one is kept; "
                      "free some space or pick another --checkpoint-dir") from None


def load_checkpoint_checked(path: str | Path, twin: str, model: torch.nn.Module,
                            args: argparse.Namespace) -> dict:
    """Load `path` for `twin` ("plain", "fabric" or "lightning"); refuse what cannot resume.

    Refused in one line: a file that does not load with `weights_only=True` (it could run code,
    or is no checkpoint), another twin's checkpoint, one that lacks what resuming needs or
    holds it in the wrong shape (the optimizer's state, the random generators'), one whose
    weights do not fit `model`, one trained with other values of the flags it fixes (its
    "run_flags"), and one that already ends at `--epochs` (nothing would be left to train).
    """
    try:  # weights_only: tensors and plain data only, so a checkpoint cannot run code as it loads
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise BadInput(f"--resume {path}: not a checkpoint that loads safely "
                       f"({type(error).__name__}); {WROTE_IT}") from None
    if not isinstance(checkpoint, dict):
        raise BadInput(f"--resume {path}: holds no checkpoint; {WROTE_IT}")
    writer = written_by(checkpoint)
    if writer and writer != twin:
        raise BadInput(f"--resume {path}: a {writer} twin's checkpoint; "
                       f"resume it with the {writer} twin")
    missing = [key for key in NEEDED[twin] if key not in checkpoint]
    if missing:  # else a KeyError mid-resume, or (Lightning) a resume without the random state
        raise BadInput(f"--resume {path}: lacks {', '.join(missing)}, which resuming needs; "
                       f"{WROTE_IT}")
    wrong = _wrong_contents(checkpoint, twin, model)
    if wrong:
        raise BadInput(f"--resume {path}: {wrong}, so it cannot resume a run; {WROTE_IT}")
    for flag, saved in checkpoint["run_flags"].items():
        if flag in FIXED_BY_CHECKPOINT and getattr(args, flag) != saved:
            name = "--" + flag.replace("_", "-")
            raise BadInput(f"{name} {getattr(args, flag)}: {path} was trained with {name} {saved}, "
                           f"and resuming continues that run; pass {name} {saved}, or start a new "
                           "run without --resume")
    done = checkpoint["epoch"] + 1  # epoch: the last one finished, from 0
    if args.epochs <= done:  # else the twins would silently train nothing
        raise BadInput(f"--epochs: {path} ends after epoch {done} already; "
                       f"pass --epochs above {done} to train on")
    return checkpoint


def written_by(checkpoint: dict) -> str | None:
    """Which twin saved `checkpoint`, as its keys tell: "plain", "fabric", "lightning" or None."""
    if "state_dict" in checkpoint:
        return "lightning"
    if "model" in checkpoint:
        return "fabric" if checkpoint.get("twin") == "fabric" else "plain"
    return None


def _wrong_contents(checkpoint: dict, twin: str, model: torch.nn.Module) -> str | None:
    """What is wrong with a checkpoint that has the right keys but the wrong contents, or None."""
    for key in ("epoch", "global_step"):
        if type(checkpoint[key]) is not int or checkpoint[key] < 0:
            return f"its {key} is {checkpoint[key]!r}, not a count"
    weights = checkpoint[NEEDED[twin][0]]
    if not isinstance(weights, dict) or not all(isinstance(value, torch.Tensor)
                                                for value in weights.values()):
        return "its weights are not a dictionary of tensors"
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    if {key: tuple(value.shape) for key, value in weights.items()} != expected:
        return ("its weights do not fit this model "
                "(another example, or other --hidden-size/--num-features?)")
    if not isinstance(checkpoint["run_flags"], dict):
        return "its run_flags are not a dictionary of flags"
    lightning = twin == "lightning"
    optimizers = checkpoint["optimizer_states"] if lightning else [checkpoint["optimizer"]]
    for state in optimizers if isinstance(optimizers, list) and optimizers else [None]:
        groups = state.get("param_groups") if isinstance(state, dict) else None
        if not groups or not isinstance(state.get("state"), dict):
            return "its optimizer state has no parameter groups"
        if (sum(len(group.get("params", ())) for group in groups)
                != len(list(model.parameters()))):
            return "its optimizer state is for another number of parameters"
    states = checkpoint.get("rng_states", {"torch": torch.ByteTensor(), "python": (), "numpy": []})
    if not (isinstance(states, dict) and isinstance(states.get("torch"), torch.Tensor)
            and states["torch"].dtype == torch.uint8 and isinstance(states.get("python"), tuple)
            and isinstance(states.get("numpy"), list)):
        return "its random generators' states are not torch's, Python's and NumPy's"
    return None
