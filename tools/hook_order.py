"""The order in which `Trainer.fit` calls the hooks, recorded from a real run and drawn.

    python -m tools.hook_order docs/hook-order.png   # record a tiny fit, draw the picture

`HookRecorder` is a callback that records every callback hook the installed Lightning calls:
its methods are made from the hook names `lightning.Callback` itself defines, so a Lightning
that adds or moves a hook changes the record, not this file. `RecordedModule` is a tiny
LightningModule that records its own methods as Lightning calls them (`configure_optimizers`,
`training_step`, `backward`, `optimizer_step`, ...), into the same list. `record_fit()` runs
one small fit with both (one epoch of two batches, a sanity check, a validation pass and a
`ModelCheckpoint`) and returns the calls in order; `draw()` turns them into the picture that
lesson 2 and docs/hook-order.md show.

The callback leaves out `state_dict` and `load_state_dict`: overriding them would make it a
stateful callback, and change what the checkpoint holds.
"""

import argparse
import inspect
import logging
import sys
import tempfile
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

LEFT_OUT = {"state_dict", "load_state_dict"}  # would make the recorder a stateful callback
# The methods of a LightningModule that the Trainer calls and that `RecordedModule` records.
MODULE_METHODS = ["configure_optimizers", "training_step", "optimizer_zero_grad", "backward",
                  "optimizer_step", "validation_step"]


def callback_hooks() -> list[str]:
    """The hooks of the installed `lightning.Callback`: its public methods, minus LEFT_OUT."""
    return [name for name, _ in inspect.getmembers(L.Callback, inspect.isfunction)
            if not name.startswith("_") and name not in LEFT_OUT]


def _recording(name: str):
    def hook(self, *args, **kwargs):
        self.calls.append(("callback", name))
    hook.__name__ = name
    return hook


# A Callback whose every hook appends ("callback", hook name) to `self.calls`.
HookRecorder = type("HookRecorder", (L.Callback,), {
    "__init__": lambda self, calls: setattr(self, "calls", calls),
    "__doc__": "Records each callback hook Lightning calls, in order, into the list `calls`.",
    **{name: _recording(name) for name in callback_hooks()}})


class RecordedModule(L.LightningModule):
    """A linear model on 8 features whose methods record themselves as the Trainer calls them."""

    def __init__(self, calls: list) -> None:
        super().__init__()
        self.calls = calls
        self.model = torch.nn.Linear(8, 2)

    def configure_optimizers(self):
        self.calls.append(("module", "configure_optimizers"))
        return torch.optim.SGD(self.model.parameters(), lr=0.1)

    def training_step(self, batch, batch_idx):
        self.calls.append(("module", "training_step"))
        features, labels = batch
        return F.cross_entropy(self.model(features), labels)

    def optimizer_zero_grad(self, *args, **kwargs):
        self.calls.append(("module", "optimizer_zero_grad"))
        super().optimizer_zero_grad(*args, **kwargs)

    def backward(self, *args, **kwargs):
        self.calls.append(("module", "backward"))
        super().backward(*args, **kwargs)

    def optimizer_step(self, *args, **kwargs):
        self.calls.append(("module", "optimizer_step"))
        # optimizer.step(closure): the closure runs training_step, zero_grad and backward
        super().optimizer_step(*args, **kwargs)
        self.calls.append(("module", "optimizer_step returns"))

    def validation_step(self, batch, batch_idx):
        self.calls.append(("module", "validation_step"))
        features, labels = batch
        self.log("val_loss", F.cross_entropy(self.model(features), labels))


def record_fit(folder: str | Path | None = None) -> list[tuple[str, str]]:
    """One small fit (sanity check, 1 epoch of 2 training batches, 1 validation batch, a
    checkpoint): the calls, in order, as (who, name) with who "callback" or "module"."""
    calls = []
    generator = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(8, 8, generator=generator), torch.arange(8) % 2)
    with tempfile.TemporaryDirectory() as scratch:
        checkpoint = L.pytorch.callbacks.ModelCheckpoint(dirpath=folder or scratch,
                                                         monitor="val_loss")
        quiet = logging.getLogger("lightning.pytorch")
        level = quiet.level
        quiet.setLevel(logging.WARNING)  # no "GPU available" lines, no tip
        try:
            trainer = L.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False,
                                enable_progress_bar=False, enable_model_summary=False,
                                num_sanity_val_steps=1,
                                callbacks=[HookRecorder(calls), checkpoint])
            trainer.fit(RecordedModule(calls), DataLoader(data, batch_size=4),
                        DataLoader(data, batch_size=8))
        finally:
            quiet.setLevel(level)
    return calls


PHASES = [  # (first hook of a phase, its name, its colour) for the bands of the picture
    ("setup", "set up", "#e8e8e8"),
    ("on_sanity_check_start", "sanity check: validation on 1 batch before training",
     "#fde9c8"),
    ("on_train_start", "training starts, epoch 0 starts", "#e3eefa"),
    ("on_train_batch_start", "training batch 1: optimizer.step(closure), and the closure\n"
     "runs training_step, zero_grad and backward", "#c3dbf3"),
    ("on_validation_start", "validation, at the end of the epoch", "#fde9c8"),
    ("on_train_epoch_end", "epoch end, checkpoint", "#dcf0d8"),
    ("on_train_end", "end of fit", "#e8e8e8"),
]


def draw(calls: list[tuple[str, str]], path: str | Path | None = None):
    """The calls as a column, top to bottom, in bands by phase: callback hooks in blue, the
    module's methods in black and bold. Returns the matplotlib Figure, saved at `path` if given."""
    from matplotlib.figure import Figure

    rows = len(calls)
    figure = Figure(figsize=(7.5, 0.2 * rows + 0.9), layout="constrained")
    ax = figure.subplots()
    ax.set(xlim=(0, 1), ylim=(rows - 0.5, -1.2))
    ax.axis("off")
    starts = {first: (label, colour) for first, label, colour in PHASES}
    bands, checking, batches = [], False, 0
    for i, (_, name) in enumerate(calls):
        checking = (checking or name == "on_sanity_check_start") and name != "on_train_start"
        if name in starts and not (checking and name == "on_validation_start"):
            label, colour = starts[name]
            if name == "on_train_batch_start":
                batches += 1
                label = label if batches == 1 else f"training batch {batches}: the same"
            bands.append((i, label, colour))
    for (begin, label, colour), end in zip(bands, [b[0] for b in bands[1:]] + [rows]):
        ax.axhspan(begin - 0.5, end - 0.5, xmin=0, xmax=1, color=colour, zorder=0)
        ax.axhline(begin - 0.5, color="white", linewidth=2, zorder=0)
        ax.text(0.99, begin - 0.35, label, ha="right", va="top", fontsize=8, style="italic",
                color="#444")
    inside = False  # between optimizer_step and its return: the closure's calls, indented
    for i, (who, name) in enumerate(calls):
        module, ends = who == "module", name.endswith(" returns")
        inside = (inside or name == "optimizer_step") and not ends
        x = 0.02 + (0.04 if inside and name != "optimizer_step" else 0)
        ax.text(x, i, name + ("()" if module and not ends else ""), va="center", fontsize=8,
                family="monospace", weight="bold" if module and not ends else "normal",
                color=("#777" if ends else "black") if module else "#1f5fa8")
    ax.text(0.02, -1, "Trainer.fit, as recorded: callback hooks in blue, "
            "the LightningModule's methods in bold", fontsize=9, va="center")
    if path:
        figure.savefig(path, dpi=110)
    return figure


def main() -> None:
    parser = argparse.ArgumentParser(description="Record the hooks of a small fit and draw them.")
    parser.add_argument("png", help="where to write the picture, e.g. docs/hook-order.png")
    args = parser.parse_args()
    if not Path(args.png).parent.is_dir():
        sys.exit(f"error: {Path(args.png).parent} is not a folder; give a PNG path in an "
                 "existing folder")
    calls = record_fit()
    draw(calls, args.png)
    print(f"wrote {args.png}: {len(calls)} calls")


if __name__ == "__main__":
    main()
