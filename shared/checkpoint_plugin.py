"""The checkpoint plugin of the Lightning and Fabric twins: every checkpoint file goes through it.

`Trainer(plugins=[...])` and `Fabric(plugins=[...])` take a `CheckpointIO`, the object that
writes and reads each checkpoint file: `ModelCheckpoint` and `trainer.fit(ckpt_path=...)`,
`fabric.save` and `fabric.load` all call it. `CheckedCheckpointIO` is Lightning's own
`TorchCheckpointIO`, made to write and read the way the plain twin does by hand
(by_hand/checkpointing.py, shared/checkpoint_files.py):
- saving, it adds the flags a checkpoint fixes (`run_flags`: --lr, --momentum, --lr-step-gamma,
  --batch-size, --seed, --dataset) under "run_flags", as the plain twin's `make_checkpoint`
  does, and writes the file beside its target and renames it into place;
- reading the `--resume` file, it refuses in one line one that cannot resume this run, among
  them one trained with other values of those flags.
So the LightningModule takes only what builds the model and its optimizer, and every twin
refuses a `--resume` with another `--batch-size`, `--seed` or `--dataset` the same way.
"""

import argparse
from pathlib import Path

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from shared.checkpoint_files import atomic_save, load_checkpoint_checked, run_flags


class CheckedCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO, reading and writing the way the plain twin does.

    Reading: `trainer.fit(ckpt_path=PATH)` (in the Fabric twin, `fabric.load(PATH, ...)`) reads
    the `--resume` file PATH through this, once, safely and checked.
    Lightning alone would fail on a plain twin's checkpoint, or one of another example, with
    a KeyError or a size mismatch deep in its loading code; a learner deserves one line.
    Writing: Lightning's own `save_checkpoint` writes into a temporary file in $TMPDIR and
    then moves it into place; when the checkpoint folder is on another filesystem that move is
    a copy, and a kill or a full disk during it destroys the previous file. `atomic_save`
    writes beside the target and renames, which is atomic on any filesystem.
    """

    def __init__(self, model: torch.nn.Module, args: argparse.Namespace,
                 twin: str = "lightning", vocabulary: str | None = None) -> None:
        super().__init__()
        self.model, self.args, self.twin = model, args, twin
        self.vocabulary = vocabulary  # step 4: the characters its model knows, saved and checked

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
        if self.args.resume and Path(path).resolve() == Path(self.args.resume).resolve():
            return load_checkpoint_checked(path, self.twin, self.model, self.args, self.vocabulary)
        # Another file: the Fabric twin's own best.ckpt, reloaded for --test and --predict.
        return super().load_checkpoint(path, map_location, weights_only=True)

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        extra = {"vocabulary": self.vocabulary} if self.vocabulary is not None else {}
        atomic_save(path, checkpoint | {"run_flags": run_flags(self.args)} | extra)
