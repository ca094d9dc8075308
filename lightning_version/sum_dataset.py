"""Step 3 of 3: Lightning's extras, each one argument or one callback, on a custom Dataset.

Twin: plain_pytorch/sum_dataset.py writes each extra by hand; tests/test_features.py holds
every one against its twin, bit for bit. Read the two side by side, `diff -y -W 210
plain_pytorch/sum_dataset.py lightning_version/sum_dataset.py`. Steps 1 and 2 taught the
Trainer and a real training job.

This step teaches: a custom `Dataset` (shared/data.py: `SumDataset`) served by the
LightningModule's own `train_dataloader`/`val_dataloader`; `seed_everything(workers=True)`
and `Trainer(deterministic=True)`; the `EarlyStopping` callback; `Tuner.lr_find` and
`Tuner.scale_batch_size`; `Trainer(gradient_clip_val=..., precision=...,
accumulate_grad_batches=...)`.

Run:  python -m lightning_version.sum_dataset --early-stopping-patience 2 --find-lr

Left out on purpose: checkpoints, schedulers, test and predict (step 2); the finders are
run without clipping and accumulation, as their hand-written twins leave those out.
"""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.tuner import Tuner
from torch.utils.data import DataLoader

from shared import process_setup, run_end
from shared.data import first, make_sum_dataset
from shared.flags import parse_args
from shared.lightning_callbacks import RecordMetrics
from shared.models import SumMLP
from shared.run_folders import claim_run_folders
from shared.run_record import RunRecord

EXAMPLE = "sum_dataset"


class LitSumMLP(L.LightningModule):
    """Wraps the shared `SumMLP` (it does not redefine it), and serves its own data loaders."""

    def __init__(self, train_set, val_set, num_features: int, hidden_size: int, lr: float,
                 batch_size: int, num_workers: int = 0) -> None:
        super().__init__()
        self.model = SumMLP(num_features, hidden_size)  # the same network the plain twin trains
        self.train_set, self.val_set, self.num_workers = train_set, val_set, num_workers
        self.lr = lr  # Tuner.lr_find writes its suggestion here
        self.batch_size = batch_size  # Tuner.scale_batch_size searches over this

    def training_step(self, batch, batch_idx):
        features, labels = batch  # on the device, and the forward under autocast for bf16-mixed
        logits = self.model(features)  # (B,) one logit per vector
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        self.log("train_loss", loss)
        return loss  # the Trainer accumulates, clips and steps as its arguments say

    def validation_step(self, batch, batch_idx):
        features, labels = batch
        logits = self.model(features)
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        accuracy = ((logits > 0).float() == labels).float().mean()  # logit > 0 means p > 0.5
        self.log("val_loss", loss, prog_bar=True)
        self.log("val_accuracy", accuracy, prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.model.parameters(), lr=self.lr)

    def train_dataloader(self):  # asked again after the batch-size finder changes self.batch_size
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True,
                          num_workers=self.num_workers)  # workers seeded by seed_everything

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=self.batch_size, num_workers=self.num_workers)


def main(argv: list[str] | None = None) -> RunRecord:
    args = parse_args(EXAMPLE, "lightning", argv, about=__doc__)
    L.seed_everything(args.seed, workers=True)  # workers=True: each DataLoader worker reseeded

    # Data: a custom Dataset; the model below serves it through its own loaders.
    train_set, val_set, _, note = make_sum_dataset(args.num_samples, args.num_features, args.seed)
    print(note)  # --data-dir is not used

    # Model; the Trainer puts it on its device, and the optimizer comes from configure_optimizers.
    model = LitSumMLP(first(train_set, args.limit_train), first(val_set, args.limit_val),
                      args.num_features, args.hidden_size, args.lr, args.batch_size,
                      args.num_workers)

    # The loop, with each extra switched on by one Trainer argument or callback.
    record = RunRecord.start(EXAMPLE, "lightning", args)  # its losses, accuracies and time
    run = claim_run_folders(args, EXAMPLE, "lightning")  # LOG_DIR/EXAMPLE/lightning/version_N
    callbacks = [RecordMetrics(record)]  # fills the record from what Lightning computed
    early_stopping = None
    if args.early_stopping_patience:
        early_stopping = EarlyStopping(monitor="val_loss", mode="min",
                                       patience=args.early_stopping_patience,
                                       min_delta=args.early_stopping_min_delta)
        callbacks.append(early_stopping)
    trainer = L.Trainer(
        max_epochs=args.epochs,
        accelerator=args.accelerator,
        devices=1,
        precision=args.precision,  # "bf16-mixed": each forward under torch.autocast(bfloat16)
        gradient_clip_val=args.gradient_clip_val,
        gradient_clip_algorithm=args.gradient_clip_algorithm,
        accumulate_grad_batches=args.accumulate_grad_batches,
        deterministic=args.deterministic,
        fast_dev_run=args.dry_run,
        logger=TensorBoardLogger(f"{args.log_dir}/{EXAMPLE}", "lightning", version=run.version,
                                 default_hp_metric=False),  # version_N, claimed above
        log_every_n_steps=1,
        enable_progress_bar=not args.no_progress, enable_model_summary=False,  # no layer table
        enable_checkpointing=False,  # checkpoints are step 2's lesson
        callbacks=callbacks,
    )
    if args.find_lr and not args.dry_run:  # replaces 1.x's Trainer(auto_lr_find=True)
        lr_finder = Tuner(trainer).lr_find(model)  # sets model.lr to its suggestion
        print(f"lr finder suggests {lr_finder.suggestion()}")
        figure = lr_finder.plot(suggest=True)  # loss against lr, the suggestion marked
        figure.savefig(run.logs / "lr_find.png")
    if args.find_batch_size and not args.dry_run:  # replaces 1.x's auto_scale_batch_size=...
        Tuner(trainer).scale_batch_size(model, mode=args.find_batch_size, init_val=args.batch_size)
        print(f"batch-size finder chose {model.batch_size}")
    trainer.fit(model)
    if early_stopping and early_stopping.stopping_reason_message:
        print(f"early stopping after epoch {early_stopping.stopped_epoch}: "
              f"{early_stopping.stopping_reason_message}")
    return record.finish(args)  # prints the summary line (shared/run_record.py)


if __name__ == "__main__":
    with run_end.in_one_line(), process_setup.in_place():
        main()
