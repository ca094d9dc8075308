"""Step 4 of 4: a small GPT trained on characters, by steps, by the Trainer's arguments.

Twins: plain_pytorch/tiny_gpt.py writes the same job by hand, as nanoGPT's train.py does;
fabric_version/tiny_gpt.py keeps that loop and hands Fabric the devices. tests/test_tiny_gpt.py
proves all three give the same losses, evaluations, learning rates and sampled text, bit for
bit. Read them side by side, `diff -y -W 210 plain_pytorch/tiny_gpt.py
lightning_version/tiny_gpt.py`.

This step teaches: `Trainer(max_steps=...)` instead of epochs, with `val_check_interval=N,
check_val_every_n_epoch=None` (evaluate every N steps, across epochs) and
`limit_val_batches`; AdamW with two parameter groups in `configure_optimizers`; a warmup-cosine
`LambdaLR` returned with `"interval": "step"`, and `LearningRateMonitor` logging its rate;
`ModelCheckpoint(every_n_train_steps=N, save_top_k=-1)` and a resume from the middle of the
run that continues bit for bit (the Trainer saves the training iterable's `state_dict()` for
you: shared/text.py); `predict_step` sampling text with a seeded generator;
`Trainer(precision="bf16-mixed")`; `torch.compile` (`--compile`).

Run:  python -m lightning_version.tiny_gpt --checkpoint-dir checkpoints
      python -m lightning_version.tiny_gpt --devices 2

Left out on purpose: gradient accumulation and clipping (step 3), a tokenizer beyond single
characters, dropout (every random draw here is one the twins can name).
"""

from functools import partial

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from torch.utils.data import DataLoader

from shared import process_setup, run_end
from shared.checkpoint_plugin import CheckedCheckpointIO
from shared.divergence import stop_if_diverged
from shared.flags import parse_args
from shared.lightning_callbacks import RecordBySteps, RngInCheckpoint
from shared.models import TinyGPT
from shared.optimisation import parameter_groups, warmup_cosine
from shared.ranks import global_rank
from shared.run_folders import claim_run_folders
from shared.run_record import RunRecord
from shared.text import RandomWindows, decode, encode, load_corpus, validation_windows

EXAMPLE = "tiny_gpt"


class LitTinyGPT(L.LightningModule):
    """Wraps the shared `TinyGPT`: training, validation and predict steps, and the optimiser."""

    def __init__(self, vocabulary: str, args) -> None:
        super().__init__()
        self.vocabulary, self.args = vocabulary, args
        self.model = TinyGPT(len(vocabulary), args.context)  # the network the plain twin trains

    def training_step(self, batch, batch_idx):
        x, y = batch  # (B, T) each, on the device already
        logits = self.model(x)  # (B, T, vocab), under bf16 autocast with bf16-mixed
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        self.log("train_loss", loss)
        return loss  # the Trainer calls zero_grad, backward and step, then the scheduler

    def on_train_batch_end(self, outputs, batch, batch_idx):
        stop_if_diverged(outputs["loss"], self.global_step, self.args.lr)

    def validation_step(self, batch, batch_idx):  # limit_val_batches of them, every N steps
        x, y = batch
        logits = self.model(x)
        self.log("val_loss", F.cross_entropy(logits.flatten(0, 1), y.flatten()), sync_dist=True)
        self.log("val_accuracy", (logits.argmax(dim=-1) == y).float().mean(), sync_dist=True)

    def predict_step(self, batch, batch_idx):  # trainer.predict: continue the prompt
        generator = torch.Generator(self.device).manual_seed(self.args.seed)
        ids = self.model.generate(batch, self.args.sample_length, generator,
                                  self.args.temperature)
        return decode(ids[0, batch.shape[1]:].tolist(), self.vocabulary)

    def configure_optimizers(self):
        args = self.args
        optimizer = torch.optim.AdamW(parameter_groups(self.model, args.weight_decay), lr=args.lr,
                                      betas=(0.9, 0.95))
        factor = partial(warmup_cosine, warmup_steps=args.warmup_steps, max_steps=args.max_steps)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)  # lr = args.lr * factor
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}  # after every step


def main(argv: list[str] | None = None) -> RunRecord:
    args = parse_args(EXAMPLE, "lightning", argv, about=__doc__)
    L.seed_everything(args.seed)  # the same initial weights

    # Data: random windows of the first 9/10 of the text; validation reads the last 1/10.
    corpus = load_corpus(args.corpus, args.data_dir, args.context)
    print(f"{len(corpus.train) + len(corpus.val):,} characters, {len(corpus.vocabulary)} distinct")
    val_loader = DataLoader(validation_windows(corpus.val, args.context),
                            batch_size=args.batch_size)  # DDP: Lightning adds the sampler

    # Model; the Trainer builds the optimizer and scheduler from configure_optimizers.
    model = LitTinyGPT(corpus.vocabulary, args)
    if args.compile:  # in place: the same parameters and state_dict keys
        model.model.compile()

    # Checkpoints every --checkpoint-every steps, each kept (save_top_k=-1).
    run = claim_run_folders(args, EXAMPLE, "lightning")
    record = RunRecord.start(EXAMPLE, "lightning", args)
    callbacks = [RecordBySteps(record), RngInCheckpoint(), LearningRateMonitor("step")]
    if args.checkpoint_dir:
        callbacks.append(ModelCheckpoint(dirpath=run.checkpoints, filename="step_{step:05d}",
                                         auto_insert_metric_name=False, save_top_k=-1,
                                         every_n_train_steps=args.checkpoint_every))

    # The loop, by steps: the Trainer trains, evaluates every N steps and checkpoints.
    trainer = L.Trainer(
        max_steps=args.max_steps,  # no epochs: the training iterable is as long as the run
        val_check_interval=args.eval_interval, check_val_every_n_epoch=None,  # every N steps
        limit_val_batches=args.eval_batches,
        num_sanity_val_steps=0,  # no evaluation before step 1
        precision=args.precision,
        deterministic=args.compile,  # compiled: the embeddings' gradients summed in a fixed order
        accelerator=args.accelerator,
        devices=args.devices,  # DDP: N processes; Lightning starts the other N - 1 itself
        num_nodes=args.num_nodes,
        strategy="ddp" if args.devices * args.num_nodes > 1 else "auto",
        fast_dev_run=args.dry_run,
        logger=TensorBoardLogger(f"{args.log_dir}/{EXAMPLE}", "lightning", version=run.version,
                                 default_hp_metric=False),
        log_every_n_steps=1,
        enable_progress_bar=not args.no_progress, enable_model_summary=False,
        enable_checkpointing=bool(args.checkpoint_dir),
        callbacks=callbacks,
        plugins=[CheckedCheckpointIO(model, args, vocabulary=corpus.vocabulary)],
    )
    # The training iterable: not a DataLoader, so Lightning leaves it as it is; it has a
    # state_dict(), so every checkpoint holds its generator and position (shared/text.py).
    train_stream = RandomWindows(corpus.train, args.context, args.batch_size, args.max_steps,
                                 args.seed, rank=global_rank())  # DDP: each its own
    trainer.fit(model, train_dataloaders=train_stream, val_dataloaders=val_loader,
                ckpt_path=args.resume)

    # Sampling: predict_step continues the prompt (one batch of one: the prompt, (1, P)); under
    # DDP each process gets its own copy and, from the same seed, samples the same text.
    prompt = encode(args.prompt, corpus.vocabulary)
    record.sample = trainer.predict(model, DataLoader([prompt] * trainer.world_size))[0]
    print(f"sample:\n{args.prompt}{record.sample}")
    return record.finish(args)


if __name__ == "__main__":
    with run_end.in_one_line(), process_setup.in_place():
        main()
