"""Checkpoint files on disk: written atomically, read once, refused when they cannot resume.

Every twin of step 2 goes through here. The plain twin saves with `atomic_save` and resumes
with `load_checkpoint_checked` (by_hand/checkpointing.py); the Lightning twin's Trainer
and the Fabric twin's `fabric.save`/`fabric.load` do both through `CheckedCheckpointIO`
(shared/checkpoint_plugin.py), Lightning's own extension point for checkpoint IO. So a kill
or a full disk during a save leaves the previous file whole, and a refusal is one line
(`BadInput`) in every twin.
"""

import argparse
import fcntl
import math
import os
import random
from pathlib import Path

import numpy as np
import torch

from shared.optimisation import parameter_groups
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
FIXED_BY_CHECKPOINT = ("lr", "momentum", "lr_step_gamma", "batch_size", "seed", "dataset",
                       "max_steps", "context", "warmup_steps", "weight_decay")  # step 4's too
# Step 4 counts steps: no epoch-interval scheduler (the twins set the lr by hand or through
# a LambdaLR inside Lightning's "lr_schedulers"); its training stream's state must be saved.
NEEDED_BY_STEPS = {
    "plain": ("model", "optimizer", "train_stream", "rng_states", "global_step", "run_flags",
              "vocabulary"),
    "fabric": ("model", "optimizer", "train_stream", "rng_states", "global_step", "run_flags",
               "vocabulary", "twin"),
    "lightning": ("state_dict", "optimizer_states", "lr_schedulers", "loops", "global_step",
                  "rng_states", "run_flags", "vocabulary"),
}


def run_flags(args: argparse.Namespace) -> dict:
    """The flags of this run that a checkpoint fixes, to save in it under "run_flags"."""
    return {flag: getattr(args, flag) for flag in FIXED_BY_CHECKPOINT if hasattr(args, flag)}


def atomic_save(path: str | Path, checkpoint: dict) -> None:
    """`torch.save` into a temporary file beside `path`, then rename it over `path`.

    A rename within one folder is atomic, so a run killed while writing, or a disk that
    fills up, leaves the previous checkpoint whole, never half of the new one. Beside the
    target, not in $TMPDIR: a rename across filesystems is a copy, which a kill can cut short.
    A write that fails removes its temporary file and ends the run in one line.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.part")
    remove_stale_parts(path.parent)  # what a save killed earlier in this folder left
    try:
        with open(temporary, "wb") as held:  # locked while it is written: not stale (see below)
            fcntl.flock(held, fcntl.LOCK_EX)
            torch.save(checkpoint, temporary)
            os.replace(temporary, path)
    except (OSError, RuntimeError) as error:  # torch.save reports a full disk as a RuntimeError
        temporary.unlink(missing_ok=True)
        if not path.parent.is_dir():
            raise OSError(f"cannot write the checkpoint {path}: its folder {path.parent} was "
                          "removed while the run was going") from None
        reason = getattr(error, "strerror", None) or str(error).splitlines()[0]
        raise OSError(f"cannot write the checkpoint {path} ({reason}); the previous one is kept; "
                      "free some space or pick another --checkpoint-dir") from None


def remove_stale_parts(folder: str | Path) -> list[Path]:
    """Remove the `.NAME.part` files in `folder` that no save is writing any more; return them.

    A save killed mid-write (SIGKILL, a power cut) cannot remove its temporary file. Each
    save holds a lock (`flock`) on its `.part` file while writing it, and the kernel drops a
    lock when its process dies: a `.part` whose lock can be taken is litter, and goes; one
    still locked belongs to a run that is saving right now, and stays.
    """
    removed = []
    for part in Path(folder).glob(".*.part") if Path(folder).is_dir() else []:
        try:
            with open(part, "rb") as probe:
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while a save holds it
                part.unlink()
                removed.append(part)
        except OSError:  # still being written, or gone already
            continue
    return removed


def load_checkpoint_checked(path: str | Path, twin: str, model: torch.nn.Module,
                            args: argparse.Namespace, vocabulary: str | None = None) -> dict:
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
    by_steps = hasattr(args, "max_steps")  # step 4
    missing = [key for key in (NEEDED_BY_STEPS if by_steps else NEEDED)[twin]
               if key not in checkpoint]
    if missing:  # else a KeyError mid-resume, or (Lightning) a resume without the random state
        raise BadInput(f"--resume {path}: lacks {', '.join(missing)}, which resuming needs; "
                       f"{WROTE_IT}")
    if by_steps:
        _check_the_model_fits(path, checkpoint, args, vocabulary)
    wrong = _wrong_contents(checkpoint, twin, model)
    if wrong:
        raise BadInput(f"--resume {path}: {wrong}, so it cannot resume a run; {WROTE_IT}")
    for flag, saved in checkpoint["run_flags"].items():
        if flag in FIXED_BY_CHECKPOINT and getattr(args, flag) != saved:
            name = "--" + flag.replace("_", "-")
            if type(saved) is not type(getattr(args, flag)):  # "0.01" would read as 0.01 below
                kind = type(getattr(args, flag)).__name__
                raise BadInput(f"--resume {path}: its saved {name} is {saved!r}, a "
                               f"{type(saved).__name__}, not a {kind}, so it cannot resume a "
                               f"run; {WROTE_IT}")
            raise BadInput(f"{name} {getattr(args, flag)}: {path} was trained with {name} {saved}, "
                           f"and resuming continues that run; pass {name} {saved}, or start a new "
                           "run without --resume")
    if by_steps:
        if checkpoint["global_step"] >= args.max_steps:
            raise BadInput(f"--max-steps: {path} ends at step {checkpoint['global_step']} "
                           "already; nothing is left to train")
        return checkpoint
    done = checkpoint["epoch"] + 1  # epoch: the last one finished, from 0
    if args.epochs <= done:  # else the twins would silently train nothing
        raise BadInput(f"--epochs: {path} ends after epoch {done} already; "
                       f"pass --epochs above {done} to train on")
    return checkpoint


def _check_the_model_fits(path, checkpoint: dict, args: argparse.Namespace,
                          vocabulary: str | None) -> None:
    """Step 4: a model that reads fewer characters than --context, or knows other characters
    than the corpus holds, cannot continue on it (said before the weights' shapes are)."""
    saved_context = checkpoint["run_flags"].get("context") if isinstance(
        checkpoint["run_flags"], dict) else None
    if isinstance(saved_context, int) and args.context > saved_context:
        raise BadInput(f"--context {args.context}: longer than the model's in {path}, which "
                       f"reads at most {saved_context} characters; pass --context "
                       f"{saved_context}")
    saved = checkpoint["vocabulary"]
    if vocabulary is not None and saved != vocabulary:
        raise BadInput(f"--corpus: its {len(vocabulary)} distinct characters are not the "
                       f"{len(saved) if isinstance(saved, str) else '?'} that the model in "
                       f"{path} was trained on; resume with the text it was trained on")


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
        if key in checkpoint and (type(checkpoint[key]) is not int or checkpoint[key] < 0):
            return f"its {key} is {checkpoint[key]!r}, not a count"
    weights = checkpoint[NEEDED[twin][0]]
    if not isinstance(weights, dict) or not all(isinstance(value, torch.Tensor)
                                                for value in weights.values()):
        return "its weights are not a dictionary of tensors"
    expected = {key: (tuple(value.shape), value.dtype) for key, value in model.state_dict().items()}
    if {key: (tuple(value.shape), value.dtype) for key, value in weights.items()} != expected:
        return ("its weights do not fit this model "
                "(another example, or other --hidden-size/--num-features?)")
    if not isinstance(checkpoint["run_flags"], dict):
        return "its run_flags are not a dictionary of flags"
    lightning = twin == "lightning"
    optimizers = checkpoint["optimizer_states"] if lightning else [checkpoint["optimizer"]]
    for state in optimizers if isinstance(optimizers, list) and optimizers else [None]:
        wrong = _wrong_optimizer_state(state, model)
        if wrong:
            return wrong
    if lightning:
        schedulers = checkpoint["lr_schedulers"]
    else:  # step 4's plain and Fabric twins set the rate by hand: no scheduler to save
        schedulers = [checkpoint["scheduler"]] if "scheduler" in checkpoint else []
    groups = len(optimizers[0]["param_groups"])
    for state in schedulers if isinstance(schedulers, list) else [None]:
        wrong = _wrong_scheduler_state(state, groups)
        if wrong:
            return wrong
    if lightning and not isinstance(checkpoint["loops"], dict):
        return "its loops' state is not a dictionary"
    return _wrong_generator_states(checkpoint.get("rng_states"))


def _in_optimizer_order(model: torch.nn.Module, groups: list[dict]) -> list[torch.nn.Parameter]:
    """`model`'s parameters in the order the twins' optimizers hold them: one group in the
    model's order, or AdamW's decay and no-decay groups (shared/optimisation.py, step 4)."""
    if len(groups) > 1:
        split = [group["params"] for group in parameter_groups(model, 0.0)]
        if [len(params) for params in split] == [len(group["params"]) for group in groups]:
            return [parameter for params in split for parameter in params]
    return list(model.parameters())


def _wrong_optimizer_state(state, model: torch.nn.Module) -> str | None:
    """What in one optimizer's saved state would fail at the first step, or None.

    Each buffer (SGD's momentum, Adam's averages) must have its parameter's shape and dtype;
    a 0-dimensional tensor (a step count) and None (no buffer yet) are allowed.
    """
    groups = state.get("param_groups") if isinstance(state, dict) else None
    if not groups or not isinstance(groups, list) or not isinstance(state.get("state"), dict):
        return "its optimizer state has no parameter groups"
    if not all(isinstance(group, dict) and isinstance(group.get("params"), list)
               for group in groups):
        return "its optimizer state's parameter groups are not lists of parameters"
    indices = [index for group in groups for index in group["params"]]
    parameters = _in_optimizer_order(model, groups)
    if len(indices) != len(parameters):
        return "its optimizer state is for another number of parameters"
    for group in groups:
        for key in ("lr", "momentum", "dampening", "weight_decay"):
            value = group.get(key, 0.0)
            if type(value) not in (int, float) or not math.isfinite(value):
                return f"its optimizer's {key} is {value!r}, not a number"
    shapes = dict(zip(indices, parameters))
    for index, buffers in state["state"].items():
        if index not in shapes or not isinstance(buffers, dict):
            return f"its optimizer state holds buffers for a parameter {index!r} it does not have"
        parameter = shapes[index]
        for name, buffer in buffers.items():
            if buffer is None or isinstance(buffer, torch.Tensor) and buffer.dim() == 0:
                continue
            if not isinstance(buffer, torch.Tensor) or buffer.shape != parameter.shape \
                    or buffer.dtype != parameter.dtype:
                got = (f"{tuple(buffer.shape)} {buffer.dtype}"
                       if isinstance(buffer, torch.Tensor) else type(buffer).__name__)
                return (f"its optimizer's {name} for parameter {index} is {got}, not "
                        f"{tuple(parameter.shape)} {parameter.dtype} as the parameter")
    return None


def _wrong_scheduler_state(state, groups: int) -> str | None:
    """What in a saved lr scheduler's state would fail or mislead, or None: its epoch count and
    its learning rates (one per parameter group), LambdaLR's entries (one per group), and
    numbers everywhere else."""
    if not isinstance(state, dict) or type(state.get("last_epoch")) is not int:
        return "its scheduler state has no epoch count (last_epoch)"
    for key in ("base_lrs", "_last_lr"):
        rates = state.get(key, [0.0] * groups)
        if not (isinstance(rates, list) and len(rates) == groups
                and all(type(rate) in (int, float) and math.isfinite(rate) for rate in rates)):
            return f"its scheduler's {key} is {rates!r}, not one learning rate per group"
    lambdas = state.get("lr_lambdas", [None] * groups)  # LambdaLR's: one per group
    if not (isinstance(lambdas, list) and len(lambdas) == groups
            and all(entry is None or isinstance(entry, dict) for entry in lambdas)):
        return f"its scheduler's lr_lambdas is {lambdas!r}, not one entry per group"
    for key, value in state.items():
        if key not in ("base_lrs", "_last_lr", "lr_lambdas") \
                and type(value) not in (int, float, bool) and value is not None:
            return f"its scheduler's {key} is {value!r}, not a number"
    return None


def _wrong_generator_states(states) -> str | None:
    """Whether the random generators' saved states would load: each is tried on a new generator,
    so nothing global changes here, and a state of the wrong size or type is found before the
    run starts rather than where it resumes."""
    if states is None:  # not every twin saves them; NEEDED says which must
        return None
    if not isinstance(states, dict):
        return "its random generators' states are not torch's, Python's and NumPy's"
    try:
        torch.Generator().set_state(states["torch"])
        random.Random().setstate(states["python"])
        name, keys, position, has_gauss, cached_gaussian = states["numpy"]
        np.random.RandomState().set_state((name, keys.numpy().astype(np.uint32), position,
                                           has_gauss, cached_gaussian))
    except Exception:  # any of: a missing key, a wrong type, a state of the wrong size
        return "its random generators' states are not torch's, Python's and NumPy's"
    return None
