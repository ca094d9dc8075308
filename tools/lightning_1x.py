"""Lightning 1.x calls that classic tutorials use, what the installed Lightning does with them now.

    python -m tools.lightning_1x           # prints the table of docs/lightning-1x.md
    python -m tools.lightning_1x --update  # writes it into docs/lightning-1x.md (its markers)

Each row is tried for real by `try_call`: an error, a warning, or silence. Lesson 8
(notebooks/08_from_lightning_1x_to_2x.ipynb) runs every row and its 2.x replacement;
tests/test_lightning_1x.py checks each row against the installed Lightning, so the guide
cannot go stale silently when Lightning changes.
"""

import contextlib
import io
import warnings
from collections.abc import Callable
from typing import NamedTuple

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from tools.ladder import update_block


class Outcome(NamedTuple):
    kind: str  # "error", "warning" or "silence"
    message: str  # the error's or the first warning's text, "" for silence


class Row(NamedTuple):
    old: str  # the 1.x call, as tutorials write it
    try_old: Callable[[], object]
    kind: str  # what it does now: "error", "warning" or "silence"
    says: str  # a fragment of what it says now (empty for silence)
    new: str  # the 2.x replacement, as this repository writes it
    try_new: Callable[[], object]  # the replacement, run for real
    returns: object = None  # where the old call runs: what it gives back (checked by the tests)
    result: str = ""  # that, in words, for the table


class TinyModule(L.LightningModule):
    """The smallest LightningModule that trains: one linear layer on 8 random points."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.lr = 0.1  # what Tuner.lr_find sets
        self.batch_size = 4  # what Tuner.scale_batch_size searches over

    def training_step(self, batch, batch_idx):
        loss = self.layer(batch[0]).pow(2).mean()
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)

    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.randn(8, 2)), batch_size=self.batch_size)


class WithValidation(TinyModule):
    """2.x style: validation_step logs, and self.log averages over the epoch."""

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.layer(batch[0]).pow(2).mean())

    def val_dataloader(self):
        return DataLoader(TensorDataset(torch.randn(8, 2)), batch_size=4)


class WithTrainEpochEnd(TinyModule):
    """2.x style: keep what the epoch end needs on self, read it in on_train_epoch_end."""

    def on_train_epoch_start(self):
        self.losses = []

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        self.losses.append(loss.detach())
        return loss

    def on_train_epoch_end(self):
        self.log("epoch_mean_loss", torch.stack(self.losses).mean())


class OldLogging(TinyModule):
    """1.x style: training_step returns {"loss": ..., "log": {...}}."""

    def training_step(self, batch, batch_idx):
        loss = self.layer(batch[0]).pow(2).mean()
        return {"loss": loss, "log": {"train_loss": loss}}


class OldValidationEpochEnd(TinyModule):
    """1.x style: the epoch's validation outputs averaged by hand in validation_epoch_end."""

    def validation_step(self, batch, batch_idx):
        return self.layer(batch[0]).pow(2).mean()

    def val_dataloader(self):
        return DataLoader(TensorDataset(torch.randn(8, 2)), batch_size=4)

    def validation_epoch_end(self, outputs):
        self.log("val_loss", torch.stack(outputs).mean())


class OldTrainingEpochEnd(TinyModule):
    def training_epoch_end(self, outputs):
        pass


def quiet_trainer(**kwargs) -> L.Trainer:
    """A Trainer that writes and prints nothing of its own: only what a row provokes shows."""
    settings = dict(max_epochs=1, accelerator="cpu", devices=1, logger=False,
                    enable_checkpointing=False,
                    enable_progress_bar=False, enable_model_summary=False)
    return L.Trainer(**(settings | kwargs))


def resume_from_a_checkpoint(folder: str) -> L.Trainer:
    """Train one epoch, save, then continue to epoch 2 with trainer.fit(ckpt_path=...)."""
    trainer = fit(TinyModule(), default_root_dir=folder)
    trainer.save_checkpoint(f"{folder}/last.ckpt")
    return fit(TinyModule(), max_epochs=2, default_root_dir=folder, ckpt_path=f"{folder}/last.ckpt")


def fit(module: L.LightningModule, ckpt_path: str | None = None, **trainer_args) -> L.Trainer:
    trainer = quiet_trainer(**trainer_args)
    trainer.fit(module, ckpt_path=ckpt_path)
    return trainer


def tuned(method: str, **search) -> object:
    from lightning.pytorch.tuner import Tuner

    # its temporary checkpoint
    trainer = quiet_trainer(max_epochs=10, default_root_dir=_temporary_folder())
    # lr_find draws a bar of its own on stderr, whatever enable_progress_bar says: kept out; and
    # a seed of its own, so that the search (and its suggestion) is the same wherever it runs
    with contextlib.redirect_stderr(io.StringIO()), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return getattr(Tuner(trainer), method)(TinyModule(), **search)


def _temporary_folder() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="lightning_1x_")


def _ddp_on_one_device():
    trainer = fit(TinyModule(), strategy="ddp")
    # else every later Trainer in this process thinks it is distributed
    torch.distributed.destroy_process_group()
    return trainer.strategy


def _progress_bar():
    from lightning.pytorch.callbacks import TQDMProgressBar

    # the bar it draws (Lightning's bars go to stdout): the table says that it ran
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return fit(TinyModule(), callbacks=[TQDMProgressBar(refresh_rate=10)],
                   enable_progress_bar=True)


def _model_summary():
    from lightning.pytorch.callbacks import ModelSummary

    return fit(TinyModule(), callbacks=[ModelSummary(max_depth=1)], enable_model_summary=True)


ROWS = [
    Row("`Trainer(gpus=1)`",
        lambda: quiet_trainer(gpus=1), "error", "unexpected keyword argument 'gpus'",
        "`Trainer(accelerator=\"gpu\", devices=1)` (here: `\"cpu\"`)",
        lambda: fit(TinyModule(), accelerator="cpu")),
    Row("`Trainer(auto_lr_find=True)`", lambda: quiet_trainer(auto_lr_find=True), "error",
        "unexpected keyword argument 'auto_lr_find'", "`Tuner(trainer).lr_find(model)`",
        lambda: tuned("lr_find", num_training=20).suggestion()),
    Row("`Trainer(auto_scale_batch_size=\"power\")`",
        lambda: quiet_trainer(auto_scale_batch_size="power"),
        "error", "unexpected keyword argument 'auto_scale_batch_size'",
        "`Tuner(trainer).scale_batch_size(model, mode=\"power\")`",
        lambda: tuned("scale_batch_size", mode="power", max_trials=3)),
    Row("`trainer.tune(model)`", lambda: quiet_trainer().tune(TinyModule()), "error",
        "'Trainer' object has no attribute 'tune'",
        "`Tuner(trainer)`, then `lr_find` or `scale_batch_size`",
        lambda: tuned("lr_find", num_training=20).suggestion()),
    Row("`Trainer(resume_from_checkpoint=PATH)`",
        lambda: quiet_trainer(resume_from_checkpoint="last.ckpt"),
        "error", "unexpected keyword argument 'resume_from_checkpoint'",
        "`trainer.fit(model, ckpt_path=PATH)`",
        lambda: resume_from_a_checkpoint(_temporary_folder()).current_epoch),
    Row("`Trainer(progress_bar_refresh_rate=10)`",
        lambda: quiet_trainer(progress_bar_refresh_rate=10), "error",
        "unexpected keyword argument 'progress_bar_refresh_rate'",
        "`Trainer(callbacks=[TQDMProgressBar(refresh_rate=10)])`, or `enable_progress_bar=False`",
        _progress_bar),
    Row("`Trainer(weights_summary=\"top\")`", lambda: quiet_trainer(weights_summary="top"), "error",
        "unexpected keyword argument 'weights_summary'",
        "`Trainer(callbacks=[ModelSummary(max_depth=1)])`, or `enable_model_summary=False`",
        _model_summary),
    Row("`Trainer(checkpoint_callback=False)`",
        lambda: quiet_trainer(checkpoint_callback=False), "error",
        "unexpected keyword argument 'checkpoint_callback'",
        "`Trainer(enable_checkpointing=False)`",
        lambda: fit(TinyModule(), enable_checkpointing=False)),
    Row("`Trainer(distributed_backend=\"ddp\")`",
        lambda: quiet_trainer(distributed_backend="ddp"), "error",
        "unexpected keyword argument 'distributed_backend'",
        "`Trainer(strategy=\"ddp\")` (here on 1 device)",
        _ddp_on_one_device),
    Row("`validation_epoch_end(self, outputs)`", lambda: fit(OldValidationEpochEnd()), "error",
        "Support for `validation_epoch_end` has been removed in v2.0.0",
        "`self.log(\"val_loss\", loss)` in `validation_step`, averaged over the epoch for you",
        lambda: fit(WithValidation()).logged_metrics),
    Row("`training_epoch_end(self, outputs)`", lambda: fit(OldTrainingEpochEnd()), "error",
        "Support for `training_epoch_end` has been removed in v2.0.0",
        "`on_train_epoch_end(self)`, with what it needs kept on `self`",
        lambda: fit(WithTrainEpochEnd()).logged_metrics),
    Row("`return {\"loss\": loss, \"log\": {...}}`",
        lambda: fit(OldLogging()).logged_metrics, "silence", "",
        "`self.log(\"train_loss\", loss)`; `return loss`", lambda: fit(TinyModule()).logged_metrics,
        returns={}, result="it trains and ignores the `\"log\"` dict: nothing is logged"),
    Row("`Trainer(precision=16)` on a CPU",
        lambda: quiet_trainer(precision=16).precision, "warning",
        "`precision=16` is supported for historical reasons",
        "`Trainer(precision=\"16-mixed\")` on CUDA, `\"bf16-mixed\"` on a CPU",
        lambda: fit(TinyModule(), precision="bf16-mixed").precision,
        returns="bf16-mixed", result="then, on a CPU, it trains in `bf16-mixed`"),
]


def try_call(call: Callable[[], object]) -> tuple[Outcome, object]:
    """Run `call`; say whether it raised, warned or passed silently, and what it returned."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = call()
        except Exception as error:  # the point is to show any error the old call raises
            return Outcome("error", f"{type(error).__name__}: {error}"), None
    # Lightning's own torch-deprecation note, and its hint on a machine where SLURM is installed:
    # neither is about the call
    ours = [w for w in caught if "LeafSpec" not in str(w.message)
            and "`srun` command is available" not in str(w.message)]
    if ours:
        return Outcome("warning", " / ".join(str(w.message) for w in ours)), result
    return Outcome("silence", ""), result


WHAT = {"error": "an error", "warning": "a warning", "silence": "silence"}


def table() -> str:
    """README's table: each 1.x call, what the installed Lightning does with it, and its
    replacement."""
    rows = ["| classic tutorial (1.x) | what Lightning " + L.__version__
            + " does with it | here (2.x) |",
            "|---|---|---|"]
    for row in ROWS:
        said = "; ".join(filter(None, (row.says and f"“{row.says}”", row.result)))
        rows.append(f"| {row.old} | {WHAT[row.kind]}{': ' + said if said else ''} | {row.new} |")
    return "\n".join(rows)


if __name__ == "__main__":
    import sys

    update_block("lightning-1x", table()) if "--update" in sys.argv[1:] else print(table())
