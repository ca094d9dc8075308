"""Step 4 of 4: a small GPT trained on characters, by steps, by your loop with Fabric.

The middle way: plain_pytorch/tiny_gpt.py writes the whole job by hand, as nanoGPT's train.py
does; lightning_version/tiny_gpt.py hands it to the Trainer; here the loop, the rate's schedule,
the evaluation and the checkpoints' timing stay yours. tests/test_tiny_gpt.py proves all three
give the same losses, evaluations, learning rates and sampled text, bit for bit. Read it beside
the plain twin, `diff -y -W 210 plain_pytorch/tiny_gpt.py fabric_version/tiny_gpt.py`.

This step teaches: `Fabric(precision="bf16-mixed")` and `fabric.autocast()` (the forward of a
model from `fabric.setup` runs under autocast; the loss is yours to put there); `fabric.save`
and `fabric.load` of the training iterable itself, whose `state_dict()` holds the batches'
generator, so a resume from the middle of the run continues bit for bit; `fabric.log_dict`
for the rate, as LearningRateMonitor would; DDP with `Fabric(strategy="ddp", devices=N)`.
Still yours, as in the plain twin: steps instead of epochs, the evaluation every N steps,
AdamW's parameter groups, the warmup-cosine rate set before each step, sampling.

Run:  python -m fabric_version.tiny_gpt --checkpoint-dir checkpoints
      python -m fabric_version.tiny_gpt --devices 2

Left out on purpose: gradient accumulation and clipping (step 3), a tokenizer beyond single
characters, dropout (every random draw here is one the twins can name).
"""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.fabric.loggers import TensorBoardLogger
from torch.utils.data import DataLoader

from shared import process_setup, run_end
from shared.checkpoint_plugin import CheckedCheckpointIO
from shared.divergence import stop_if_diverged
from shared.flags import parse_args
from shared.models import TinyGPT
from shared.optimisation import parameter_groups, warmup_cosine
from shared.run_folders import claim_run_folders
from shared.run_record import RunRecord
from shared.seeding import rng_states, set_rng_states
from shared.text import RandomWindows, decode, encode, load_corpus, validation_windows

EXAMPLE = "tiny_gpt"


@torch.no_grad()
def evaluate(model, loader, fabric, args):
    """Mean loss and next-character accuracy over the first --eval-batches batches."""
    model.eval()
    loss_sum = accuracy_sum = torch.tensor(0.0, device=fabric.device)
    seen = 0
    for batch_idx, (x, y) in enumerate(loader):
        if batch_idx == args.eval_batches:  # Lightning: limit_val_batches
            break
        with fabric.autocast():  # the loss under autocast too, as in validation_step
            logits = model(x)  # (B, T, vocab)
            loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        accuracy = (logits.argmax(dim=-1) == y).float().mean()
        loss_sum = loss_sum + loss * len(x)
        accuracy_sum = accuracy_sum + accuracy * len(x)
        seen += len(x)
        if args.dry_run:
            break
    model.train()
    loss_sum, accuracy_sum, seen = fabric.all_reduce((loss_sum, accuracy_sum, seen),
                                                     reduce_op="mean")  # DDP: over processes
    return (loss_sum / seen).item(), (accuracy_sum / seen).item()


def main(argv: list[str] | None = None) -> RunRecord:
    args = parse_args(EXAMPLE, "fabric", argv, about=__doc__)
    L.seed_everything(args.seed)  # the same initial weights
    ddp = args.devices * args.num_nodes > 1

    # Data first: the model's size and the checkpoint plugin need the corpus's characters.
    corpus = load_corpus(args.corpus, args.data_dir, args.context)
    model = TinyGPT(len(corpus.vocabulary), args.context)
    run = claim_run_folders(args, EXAMPLE, "fabric")
    loggers = [TensorBoardLogger(f"{args.log_dir}/{EXAMPLE}", "fabric", version=run.version)]
    fabric = L.Fabric(
        accelerator=args.accelerator,
        devices=args.devices,  # DDP: N processes; fabric.launch() starts the other N - 1
        num_nodes=args.num_nodes,
        strategy="ddp" if ddp else "auto",
        precision=args.precision,  # bf16-mixed: the model's forward runs under autocast
        loggers=loggers if run.logs else [],
        plugins=[CheckedCheckpointIO(model, args, "fabric", corpus.vocabulary)],
    )
    fabric.launch()
    if ddp:  # DDP: as the Trainer reseeds each process as it joins; Fabric does not
        fabric.seed_everything(args.seed)
    fabric.print(f"{len(corpus.train) + len(corpus.val):,} characters, "
                 f"{len(corpus.vocabulary)} distinct")
    train_stream = RandomWindows(corpus.train, args.context, args.batch_size, args.max_steps,
                                 args.seed, rank=fabric.global_rank)  # DDP: each its own
    val_loader = fabric.setup_dataloaders(DataLoader(validation_windows(corpus.val, args.context),
                                                     batch_size=args.batch_size))

    # Optimisation: AdamW, decay on the linear layers' matrices only; the rate is set by hand.
    optimizer = torch.optim.AdamW(parameter_groups(model, args.weight_decay), lr=args.lr,
                                  betas=(0.9, 0.95))
    network = model  # the shared TinyGPT itself, for sampling (fabric.setup wraps it)
    if args.compile:  # in place: the same parameters and state_dict keys
        network.compile()
    # Compiled, the embeddings' gradients are summed in a fixed order only in this mode (not by
    # threads racing); Lightning: Trainer(deterministic=...).
    torch.use_deterministic_algorithms(args.compile)
    model, optimizer = fabric.setup(model, optimizer)  # DDP: backward() averages gradients

    # Checkpoints every --checkpoint-every steps; fabric.save writes them, state_dicts and all.
    folder = fabric.broadcast(run.checkpoints)  # DDP: rank 0's folder, on every process
    first_step = 0
    if args.resume:  # fabric.load puts each object's state back and returns the rest
        state = {"model": model, "optimizer": optimizer, "train_stream": train_stream}
        saved = fabric.load(args.resume, state)
        set_rng_states(saved["rng_states"])
        first_step = saved["global_step"]
        fabric.print(f"resumed from {args.resume}: {first_step} steps done")

    # The loop, by steps: yours, as in the plain twin.
    record = RunRecord.start(EXAMPLE, "fabric", args)
    losses, rates = record.train_loss, record.learning_rate  # the curves, as plain lists
    model.train()
    for step, (x, y) in enumerate(train_stream, start=first_step):
        lr = args.lr * warmup_cosine(step, args.warmup_steps, args.max_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = fabric.to_device((x, y))  # (B, T) each: not a DataLoader, so moved by hand
        with fabric.autocast():  # the loss under autocast too, as in training_step
            logits = model(x)  # (B, T, vocab)
            loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        optimizer.zero_grad()
        fabric.backward(loss)  # DDP: averages the gradients across processes
        optimizer.step()
        losses.append(loss.item())
        rates.append(lr)
        stop_if_diverged(loss, step + 1, args.lr)
        fabric.log_dict({"train_loss": loss, "lr-AdamW": lr}, step)  # LearningRateMonitor's name
        if folder and (step + 1) % args.checkpoint_every == 0:
            state = {"model": model, "optimizer": optimizer, "train_stream": train_stream,
                     "global_step": step + 1, "rng_states": rng_states(), "twin": "fabric"}
            fabric.save(folder / f"step_{step + 1:05d}.ckpt", state)  # the plugin adds the rest
        if (step + 1) % args.eval_interval == 0 or args.dry_run:
            val_loss, val_accuracy = evaluate(model, val_loader, fabric, args)
            fabric.print(record.end_eval(step + 1, val_loss, val_accuracy))
            fabric.log_dict({"val_loss": val_loss, "val_accuracy": val_accuracy}, step)
        if args.dry_run:
            break

    # Sampling: the prompt, continued one character at a time.
    network.eval()
    prompt = fabric.to_device(encode(args.prompt, corpus.vocabulary)[None])  # (1, P)
    generator = torch.Generator(fabric.device).manual_seed(args.seed)
    with torch.no_grad(), fabric.autocast():
        ids = network.generate(prompt, args.sample_length, generator, args.temperature)
    record.sample = decode(ids[0, prompt.shape[1]:].tolist(), corpus.vocabulary)
    fabric.print(f"sample:\n{args.prompt}{record.sample}")
    for logger in fabric.loggers:
        logger.finalize("success")
    return record.finish(args)


if __name__ == "__main__":
    with run_end.in_one_line(), process_setup.in_place():
        main()
