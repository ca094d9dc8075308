"""Step 4 of 4: a small GPT trained on characters, by steps, as nanoGPT's train.py does it by hand.

Twins: lightning_version/tiny_gpt.py hands the same job to the Trainer, fabric_version/tiny_gpt.py
keeps this loop and hands Fabric the devices; tests/test_tiny_gpt.py proves all three give the
same losses, evaluations, learning rates and sampled text, bit for bit. Read them side by side,
`diff -y -W 210 plain_pytorch/tiny_gpt.py lightning_version/tiny_gpt.py`.

This step teaches how people train models today: training by steps, not epochs, with an
evaluation every N steps on N batches; AdamW with two parameter groups (no weight decay on
biases, norms and embeddings); a linear warmup then a cosine decay of the rate, set before
every step and logged by hand; a checkpoint every N steps and a resume from the middle of the
run that continues bit for bit (the batches' generator is saved too: shared/text.py); text
sampled at the end with a seeded generator; bf16 autocast on the CPU (`--precision
bf16-mixed`); `torch.compile` (`--compile`). The model is shared/models.py's `TinyGPT`.

Run:  python -m plain_pytorch.tiny_gpt --checkpoint-dir checkpoints
      torchrun --standalone --nproc-per-node 2 -m plain_pytorch.tiny_gpt --devices 2

Left out on purpose: gradient accumulation and clipping (step 3), a tokenizer beyond single
characters, dropout (every random draw here is one the twins can name).
"""

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from torch.utils.tensorboard import SummaryWriter

from by_hand.distributed import join_process_group, mean_across_processes
from by_hand.precision import autocast
from shared import process_setup, run_end
from shared.checkpoint_files import atomic_save, load_checkpoint_checked, run_flags
from shared.divergence import stop_if_diverged
from shared.flags import parse_args
from shared.models import TinyGPT
from shared.optimisation import parameter_groups, warmup_cosine
from shared.ranks import global_rank
from shared.run_folders import claim_run_folders
from shared.run_record import RunRecord
from shared.seeding import rng_states, set_rng_states
from shared.text import RandomWindows, decode, encode, load_corpus, validation_windows

EXAMPLE = "tiny_gpt"


@torch.no_grad()
def evaluate(model, loader, device, args):
    """Mean loss and next-character accuracy over the first --eval-batches batches."""
    model.eval()  # no dropout here, but the habit matters (the Trainer switches for you)
    loss_sum = accuracy_sum = torch.tensor(0.0, device=device)
    seen = 0
    for batch_idx, (x, y) in enumerate(loader):
        if batch_idx == args.eval_batches:  # Lightning: limit_val_batches
            break
        x, y = x.to(device), y.to(device)
        with autocast(args.precision, device):  # Lightning validates under autocast too
            logits = model(x)  # (B, T, vocab)
            loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        accuracy = (logits.argmax(dim=-1) == y).float().mean()
        loss_sum = loss_sum + loss * len(x)
        accuracy_sum = accuracy_sum + accuracy * len(x)
        seen += len(x)
        if args.dry_run:
            break
    model.train()
    return mean_across_processes(loss_sum, seen), mean_across_processes(accuracy_sum, seen)


def resume(args, model, optimizer, train_stream, vocabulary) -> int:
    """Put a checkpoint back (refused in one line if it cannot continue); return its step."""
    checkpoint = load_checkpoint_checked(args.resume, "plain", model, args, vocabulary)
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    train_stream.load_state_dict(checkpoint["train_stream"])  # where the batches' draws were
    set_rng_states(checkpoint["rng_states"])
    print(f"resumed from {args.resume}: {checkpoint['global_step']} steps done")
    return checkpoint["global_step"]


def main(argv: list[str] | None = None) -> RunRecord:
    args = parse_args(EXAMPLE, "plain", argv, about=__doc__)
    torch.manual_seed(args.seed)  # Lightning: L.seed_everything; the same initial weights
    join_process_group(args)  # DDP: this is one of the processes torchrun started
    ddp = args.devices * args.num_nodes > 1

    # Data: random windows of the first 9/10 of the text; validation reads the last 1/10.
    corpus = load_corpus(args.corpus, args.data_dir, args.context)
    print(f"{len(corpus.train) + len(corpus.val):,} characters, {len(corpus.vocabulary)} distinct")
    train_stream = RandomWindows(corpus.train, args.context, args.batch_size, args.max_steps,
                                 args.seed, rank=global_rank())  # DDP: each process its own
    val_set = validation_windows(corpus.val, args.context)
    val_sampler = DistributedSampler(val_set, shuffle=False) if ddp else None
    val_loader = DataLoader(val_set, batch_size=args.batch_size, sampler=val_sampler)

    # Model, on the device Trainer(accelerator="auto") picks.
    gpu = torch.accelerator.current_accelerator(check_available=True)
    device = gpu if gpu and args.accelerator != "cpu" else torch.device("cpu")
    model = TinyGPT(len(corpus.vocabulary), args.context).to(device)
    if ddp:  # DDP: Lightning reseeds each process as it joins
        torch.manual_seed(args.seed)
    trained = DistributedDataParallel(model) if ddp else model
    if args.compile:  # in place: the same parameters and state_dict keys
        trained.compile()
    # Compiled, the embeddings' gradients are summed in a fixed order only in this mode (not by
    # threads racing); Lightning: Trainer(deterministic=...).
    torch.use_deterministic_algorithms(args.compile)

    # Optimisation: AdamW, decay on the linear layers' matrices only; the rate is set by hand.
    optimizer = torch.optim.AdamW(parameter_groups(model, args.weight_decay), lr=args.lr,
                                  betas=(0.9, 0.95))

    # Checkpoints every --checkpoint-every steps; Lightning: ModelCheckpoint(every_n_train_steps).
    run = claim_run_folders(args, EXAMPLE, "plain")
    first_step = 0
    if args.resume:  # Lightning: trainer.fit(..., ckpt_path=args.resume)
        first_step = resume(args, model, optimizer, train_stream, corpus.vocabulary)

    # The loop, by steps: set the rate, one step, then checkpoint and evaluate when due.
    record = RunRecord.start(EXAMPLE, "plain", args)
    losses, rates = record.train_loss, record.learning_rate  # the curves, as plain lists
    writer = SummaryWriter(run.logs) if run.logs else None
    model.train()
    for step, (x, y) in enumerate(train_stream, start=first_step):
        lr = args.lr * warmup_cosine(step, args.warmup_steps, args.max_steps)
        for group in optimizer.param_groups:  # Lightning: a LambdaLR, "interval": "step"
            group["lr"] = lr
        x, y = x.to(device), y.to(device)  # (B, T) each
        with autocast(args.precision, device):  # Trainer(precision="bf16-mixed")
            logits = trained(x)  # (B, T, vocab)
            loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        optimizer.zero_grad()  # Lightning calls zero_grad, backward and step for you
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        rates.append(lr)
        stop_if_diverged(loss, step + 1, args.lr)
        if writer:  # Lightning: self.log("train_loss") and LearningRateMonitor("step")
            writer.add_scalar("train_loss", loss.item(), step)
            writer.add_scalar("lr-AdamW", lr, step)
        if run.checkpoints and (step + 1) % args.checkpoint_every == 0:
            checkpoint = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                          "train_stream": train_stream.state_dict(), "global_step": step + 1,
                          "rng_states": rng_states(), "run_flags": run_flags(args),
                          "vocabulary": corpus.vocabulary}  # the tokens' meaning
            run.checkpoints.mkdir(parents=True, exist_ok=True)
            atomic_save(run.checkpoints / f"step_{step + 1:05d}.ckpt", checkpoint)
        if (step + 1) % args.eval_interval == 0 or args.dry_run:  # Lightning: val_check_interval
            val_loss, val_accuracy = evaluate(model, val_loader, device, args)
            print(record.end_eval(step + 1, val_loss, val_accuracy))
            if writer:
                writer.add_scalar("val_loss", val_loss, step)
                writer.add_scalar("val_accuracy", val_accuracy, step)
        if args.dry_run:  # Lightning: fast_dev_run
            break

    # Sampling: the prompt, continued one character at a time (Lightning: predict_step).
    model.eval()
    prompt = encode(args.prompt, corpus.vocabulary)[None].to(device)  # (1, P)
    generator = torch.Generator(device).manual_seed(args.seed)  # the same seed, the same text
    with torch.no_grad(), autocast(args.precision, device):
        ids = model.generate(prompt, args.sample_length, generator, args.temperature)
    record.sample = decode(ids[0, prompt.shape[1]:].tolist(), corpus.vocabulary)
    print(f"sample:\n{args.prompt}{record.sample}")
    if writer:
        writer.close()
    return record.finish(args)


if __name__ == "__main__":
    with run_end.in_one_line(), process_setup.in_place():
        main()
