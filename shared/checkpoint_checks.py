"""Reading a `--resume` checkpoint once, safely, and refusing one that cannot resume this run.

Both twins of step 2 resume through `read_checkpoint`: the plain twin calls it itself
(plain_pytorch/by_hand/checkpointing.py: `resume`), the Lightning twin's Trainer calls it
as its checkpoint reader (shared/lightning_callbacks.py: `CheckedCheckpointIO`). So the file
is read once, where it is resumed, and a refusal is one line (`BadInput`) in either twin.
"""

from pathlib import Path

import torch

from shared.exits import BadInput

# What each twin's checkpoint must hold to resume a run exactly where it stopped.
NEEDED = {
    "plain": ("model", "optimizer", "scheduler", "rng_states", "epoch", "global_step"),
    "lightning": ("state_dict", "optimizer_states", "lr_schedulers", "loops", "epoch", "global_step", "rng_states"),
}
WROTE_IT = "pass a last.ckpt or best.ckpt that --checkpoint-dir wrote"


def read_checkpoint(path: str | Path, twin: str, model: torch.nn.Module, epochs: int) -> dict:
    """Load `path` for `twin` ("plain" or "lightning"), whose weights must fit `model`; refuse what cannot resume.

    Refused in one line: a file that does not load with `weights_only=True` (it could run code,
    or is no checkpoint), the other twin's checkpoint, one that lacks what resuming needs (the
    optimizer's state, the random generators'), one whose weights do not fit `model` (another
    example or width), and one that already ends at `epochs` (nothing would be left to train).
    """
    try:  # weights_only: tensors and plain data only, so a checkpoint cannot run code while loading
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise BadInput(f"--resume {path}: not a checkpoint that loads safely ({type(error).__name__}); "
                       f"{WROTE_IT}") from None
    if not isinstance(checkpoint, dict):
        raise BadInput(f"--resume {path}: holds no checkpoint; {WROTE_IT}")
    other = "lightning" if twin == "plain" else "plain"
    if NEEDED[other][0] in checkpoint and NEEDED[twin][0] not in checkpoint:
        raise BadInput(f"--resume {path}: a {other} twin's checkpoint; resume it with the {other} twin")
    missing = [key for key in NEEDED[twin] if key not in checkpoint]
    if missing:  # else a KeyError mid-resume, or (Lightning) a resume without the random state
        raise BadInput(f"--resume {path}: lacks {', '.join(missing)}, which resuming needs; {WROTE_IT}")
    weights = checkpoint[NEEDED[twin][0]]
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    found = {key: tuple(getattr(value, "shape", ())) for key, value in weights.items()} if isinstance(weights, dict) else None
    if found != expected:
        raise BadInput(f"--resume {path}: its weights do not fit this model (another example, or other "
                       "--hidden-size/--num-features?); resume with the flags it was trained with")
    done = checkpoint["epoch"] + 1 if isinstance(checkpoint["epoch"], int) else 0  # epoch: the last one finished
    if epochs <= done:  # else both twins would silently train nothing
        raise BadInput(f"--epochs: {path} ends after epoch {done} already; pass --epochs above {done} to train on")
    return checkpoint
