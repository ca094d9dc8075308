"""Step 2 of 3: a real training job, a small MNIST conv net with dropout, by your loop with Fabric.

The middle way: plain_pytorch/cnn_classifier.py writes the whole job by hand,
lightning_version/cnn_classifier.py hands it to the Trainer; here the loop, the checkpoint
bookkeeping and the scheduler stay yours. tests/test_parity.py proves all three give the
same per-step losses, bit for bit. Read it beside the plain twin, `diff -y -W 210
plain_pytorch/cnn_classifier.py fabric_version/cnn_classifier.py`. Step 1
(mnist_feedforward.py) taught Fabric itself.

This step teaches: `fabric.save` and `fabric.load`, which take the model, optimizer and
scheduler themselves, and a checkpoint-IO plugin (`Fabric(plugins=[...])`,
shared/checkpoint_plugin.py) that adds the flags a checkpoint fixes, checks `--resume` against
them and saves atomically; `fabric.launch()` and `Fabric(strategy="ddp", devices=N)`,
which start the N processes, put a DistributedSampler into each loader and wrap the model
(the lines marked "DDP:"); `fabric.all_reduce` and `fabric.broadcast`. Still yours: dropout's
train and eval modes, the scheduler's step, which checkpoint is best, stopping at a nan
loss, test and predict.

Run:  python -m fabric_version.cnn_classifier --checkpoint-dir checkpoints --test --predict 10
      python -m fabric_version.cnn_classifier --devices 2

Left out on purpose: a custom Dataset, worker seeding, early stopping, the finders,
clipping, mixed precision and accumulation (step 3, sum_dataset.py).
"""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.fabric.loggers import TensorBoardLogger
from torch.utils.data import DataLoader
from tqdm import tqdm

from by_hand.checkpointing import Checkpoints
from shared import process_setup, run_end
from shared.checkpoint_plugin import CheckedCheckpointIO
from shared.data import first, load_mnist
from shared.divergence import stop_if_diverged
from shared.flags import parse_args
from shared.models import ConvNet
from shared.run_folders import claim_run_folders
from shared.run_record import RunRecord, show_predictions
from shared.seeding import rng_states, set_rng_states

EXAMPLE = "cnn_classifier"


def train_one_epoch(model, train_loader, optimizer, fabric, epoch, args, losses):
    """One pass over the training data, with dropout on; each loss onto `losses`."""
    model.train()  # dropout on: still yours to switch
    bar = tqdm(train_loader, desc=f"Epoch {epoch}", disable=args.no_progress)
    for batch_idx, (images, labels) in enumerate(bar):  # on the device already
        optimizer.zero_grad()
        logits = model(images)  # (B, 10); dropout zeroes a random part of the activations
        loss = F.cross_entropy(logits, labels)
        fabric.backward(loss)  # DDP: averages the gradients across processes
        optimizer.step()
        losses.append(loss.item())
        stop_if_diverged(loss, epoch * len(train_loader) + batch_idx + 1, args.lr)  # nan or inf
        step = epoch * len(train_loader) + batch_idx
        fabric.log_dict({"train_loss": loss, "epoch": epoch}, step)
        if args.dry_run:
            break


@torch.no_grad()
def evaluate(model, loader, fabric, args):
    """Mean loss and accuracy over `loader`, each batch weighted by its size, as self.log does."""
    model.eval()  # dropout off: evaluation sees the whole network and draws no random masks
    loss_sum = accuracy_sum = torch.tensor(0.0, device=fabric.device)
    seen = 0
    for images, labels in loader:
        logits = model(images)
        loss = F.cross_entropy(logits, labels)
        accuracy = (logits.argmax(dim=1) == labels).float().mean()
        loss_sum = loss_sum + loss * len(labels)  # a short last batch counts for what it holds
        accuracy_sum = accuracy_sum + accuracy * len(labels)
        seen += len(labels)
        if args.dry_run:
            break
    # DDP: the sums and counts averaged over the processes, as self.log(..., sync_dist=True)
    loss_sum, accuracy_sum, seen = fabric.all_reduce((loss_sum, accuracy_sum, seen),
                                                     reduce_op="mean")  # one process: unchanged
    return (loss_sum / seen).item(), (accuracy_sum / seen).item()


@torch.no_grad()
def predict(model, loader, args):  # Lightning: trainer.predict, with predict_step
    model.eval()
    predictions = []
    for images, _ in loader:
        predictions += model(images).argmax(dim=1).tolist()  # (B,) predicted digits
        if args.dry_run:
            break
    return predictions


def main(argv: list[str] | None = None) -> RunRecord:
    args = parse_args(EXAMPLE, "fabric", argv, about=__doc__)
    L.seed_everything(args.seed)  # same weights, same dropout masks
    ddp = args.devices * args.num_nodes > 1

    # Model, built on the CPU: fabric.setup moves it. The checkpoint plugin checks against it.
    model = ConvNet()
    run = claim_run_folders(args, EXAMPLE, "fabric")  # DIR/EXAMPLE/fabric/version_N
    loggers = [TensorBoardLogger(f"{args.log_dir}/{EXAMPLE}", "fabric", version=run.version)]
    fabric = L.Fabric(
        accelerator=args.accelerator,
        devices=args.devices,  # DDP: N processes; fabric.launch() starts the other N - 1
        num_nodes=args.num_nodes,  # DDP: machines, each started by torchrun or SLURM
        strategy="ddp" if ddp else "auto",
        loggers=loggers if run.logs else [],  # rank 0 logs (and --dry-run: nothing)
        plugins=[CheckedCheckpointIO(model, args, "fabric")],  # checks --resume; adds run_flags
    )
    fabric.launch()  # DDP: from here on, this is one of N processes running this file
    if ddp:  # DDP: as the Trainer reseeds each process as it joins; Fabric does not
        fabric.seed_everything(args.seed)
    args.no_progress |= not fabric.is_global_zero  # DDP: one progress bar

    # Data: train, validation and test splits.
    train_set, val_set, test_set, note = load_mnist(args.data_dir, args.dataset)
    fabric.print(note)  # DDP: rank 0 alone prints
    train_set, val_set = first(train_set, args.limit_train), first(val_set, args.limit_val)
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True)
    val_loader = DataLoader(val_set, batch_size=args.batch_size)
    # DDP: each loader gets a DistributedSampler, and the train one a new order each epoch
    train_loader, val_loader = fabric.setup_dataloaders(train_loader, val_loader)

    # Optimisation: SGD with momentum; StepLR multiplies the lr by gamma after each epoch.
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=args.lr_step_gamma)
    model, optimizer = fabric.setup(model, optimizer)  # DDP: backward() averages gradients

    # Checkpoints: best.ckpt (lowest val_loss), last.ckpt (every epoch); fabric.save writes them.
    folder = fabric.broadcast(run.checkpoints)  # DDP: rank 0's folder, on every process
    checkpoints = Checkpoints(folder, save=fabric.save) if folder else None  # --dry-run: none
    first_epoch = 0
    if args.resume:  # fabric.load puts each state back and returns what is left
        state = {"model": model, "optimizer": optimizer, "scheduler": scheduler}
        saved = fabric.load(args.resume, state)
        if checkpoints:
            checkpoints.load_state_dict(saved)
        set_rng_states(saved["rng_states"])  # last: draws continue where the saved run was
        first_epoch = saved["epoch"] + 1
        fabric.print(f"resumed from {args.resume}: epoch {first_epoch} done, "
                     f"{saved['global_step']} steps")
        if ddp:  # DDP: Fabric counts the sampler's epochs from 0 in each run; it shuffles by
            train_loader.sampler.seed += first_epoch  # seed + epoch, so shift the seed instead

    # The loop: train one epoch, then validate, `epochs` times; yours, as in the plain twin.
    record = RunRecord.start(EXAMPLE, "fabric", args)  # its losses, accuracies and time
    for epoch in range(first_epoch, 1 if args.dry_run else args.epochs):
        train_one_epoch(model, train_loader, optimizer, fabric, epoch, args, record.train_loss)
        val_loss, val_accuracy = evaluate(model, val_loader, fabric, args)
        step = (epoch + 1) * len(train_loader)  # optimizer steps so far
        stop_if_diverged(torch.tensor(val_loss), step, args.lr, "val_loss")  # never the best
        fabric.print(record.end_epoch(epoch, val_loss, val_accuracy))
        fabric.log_dict({"val_loss": val_loss, "val_accuracy": val_accuracy, "epoch": epoch},
                        step - 1)  # the epoch's last step, as Lightning logs them
        scheduler.step()  # after validation, as Lightning steps an epoch-interval scheduler
        if checkpoints:  # after the scheduler's step, so a resumed run starts at the next lr
            state = {"model": model, "optimizer": optimizer, "scheduler": scheduler,
                     "epoch": epoch, "global_step": step, "rng_states": rng_states(),
                     "twin": "fabric"}  # only its twin resumes it; the plugin adds run_flags
            checkpoints.save(state, val_loss)  # fabric.save: objects become state_dicts

    # Test and predict with the best model, rebuilt from its file.
    if checkpoints:
        model = fabric.setup(ConvNet())
        fabric.load(checkpoints.best_path, {"model": model})
    if args.test:
        test_loss, test_accuracy = evaluate(model, fabric.setup_dataloaders(
            DataLoader(test_set, batch_size=args.batch_size)), fabric, args)
        fabric.print(record.end_test(test_loss, test_accuracy))
        fabric.log_dict({"test_loss": test_loss, "test_accuracy": test_accuracy,
                         "epoch": args.epochs}, args.epochs * len(train_loader))
    if args.predict:
        predict_set = first(test_set, args.predict)
        loader = fabric.setup_dataloaders(DataLoader(predict_set, batch_size=args.batch_size))
        record.predictions = predict(model, loader, args)
        show_predictions(record.predictions, predict_set)
    for logger in fabric.loggers:  # flush TensorBoard's file
        logger.finalize("success")
    return record.finish(args)  # prints the summary line (shared/run_record.py)


if __name__ == "__main__":
    with run_end.in_one_line(), process_setup.in_place():
        main()
