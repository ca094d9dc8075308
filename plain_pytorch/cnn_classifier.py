"""Step 2 of 3: a real training job, a small MNIST conv net with dropout, by a hand-written loop.

Twin: lightning_version/cnn_classifier.py trains the same model on the same batches;
tests/test_parity.py proves both give the same per-step losses, bit for bit. Read the two
side by side, `diff -y -W 210 plain_pytorch/cnn_classifier.py
lightning_version/cnn_classifier.py`. Step 1 (mnist_feedforward.py) taught the loop itself.

This step teaches: dropout, and why train and eval modes matter; SGD with momentum and a
StepLR scheduler; checkpoints (best, and last after every epoch), resuming, and rebuilding
the best model from its file; stopping at the step whose training or validation loss turns
nan or infinite; evaluating on the test split (`--test`) and plain inference (`--predict
N`); training on N processes at once (DDP, `--devices N`): the lines marked "DDP:"
(by_hand/distributed.py holds the longer parts).

Run:  python -m plain_pytorch.cnn_classifier --checkpoint-dir checkpoints --test --predict 10
      torchrun --standalone --nproc-per-node 2 -m plain_pytorch.cnn_classifier --devices 2

Left out on purpose: a custom Dataset, worker seeding, early stopping, the finders,
clipping, mixed precision and accumulation (step 3, sum_dataset.py).
"""

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from by_hand.checkpointing import Checkpoints, load_checkpoint_unchecked, make_checkpoint, resume
from by_hand.distributed import join_process_group, mean_across_processes
from shared import process_setup, run_end
from shared.checkpoint_files import run_flags
from shared.data import first, load_mnist
from shared.divergence import stop_if_diverged
from shared.flags import parse_args
from shared.models import ConvNet
from shared.run_folders import claim_run_folders
from shared.run_record import RunRecord, show_predictions

EXAMPLE = "cnn_classifier"


def train_one_epoch(model, train_loader, optimizer, device, epoch, args, losses, writer):
    """One pass over the training data, with dropout on; each loss onto `losses`."""
    model.train()  # dropout on; the Trainer switches modes for you
    bar = tqdm(train_loader, desc=f"Epoch {epoch}", disable=args.no_progress)  # Lightning's bar
    for batch_idx, (images, labels) in enumerate(bar):
        images, labels = images.to(device), labels.to(device)  # Lightning moves batches for you
        optimizer.zero_grad()  # Lightning calls zero_grad, backward and step around training_step
        logits = model(images)  # (B, 10); dropout zeroes a random part of the activations
        loss = F.cross_entropy(logits, labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        stop_if_diverged(loss, epoch * len(train_loader) + batch_idx + 1, args.lr)  # nan or inf
        if writer:  # Lightning: self.log("train_loss", loss), every step with log_every_n_steps=1
            step = epoch * len(train_loader) + batch_idx
            writer.add_scalar("train_loss", loss.item(), step)
            writer.add_scalar("epoch", epoch, step)
        if args.dry_run:  # Lightning: fast_dev_run
            break


@torch.no_grad()  # as Lightning validates (its test and predict use inference_mode: same numbers)
def evaluate(model, loader, device, args):
    """Mean loss and accuracy over `loader`, each batch weighted by its size, as self.log does."""
    model.eval()  # dropout off: evaluation sees the whole network and draws no random masks
    loss_sum = accuracy_sum = torch.tensor(0.0, device=device)
    seen = 0
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        logits = model(images)
        loss = F.cross_entropy(logits, labels)
        accuracy = (logits.argmax(dim=1) == labels).float().mean()
        loss_sum = loss_sum + loss * len(labels)  # a short last batch counts for what it holds
        accuracy_sum = accuracy_sum + accuracy * len(labels)
        seen += len(labels)
        if args.dry_run:
            break
    # DDP: the means over every process's batches, as self.log(..., sync_dist=True) takes them
    return mean_across_processes(loss_sum, seen), mean_across_processes(accuracy_sum, seen)


@torch.no_grad()
def predict(model, loader, device, args):  # Lightning: trainer.predict, with predict_step
    model.eval()
    predictions = []
    for images, _ in loader:
        predictions += model(images.to(device)).argmax(dim=1).tolist()  # (B,) predicted digits
        if args.dry_run:
            break
    return predictions


def main(argv: list[str] | None = None) -> RunRecord:
    args = parse_args(EXAMPLE, "plain", argv, about=__doc__)
    torch.manual_seed(args.seed)  # Lightning: L.seed_everything; same weights, same dropout masks
    join_process_group(args)  # DDP: this is one of the processes torchrun started, one per device
    ddp = args.devices * args.num_nodes > 1  # Lightning: strategy="ddp" does what `ddp` marks

    # Data: train, validation and test splits (Lightning: a LightningDataModule holds all three).
    train_set, val_set, test_set, note = load_mnist(args.data_dir, args.dataset)
    print(note)
    train_set, val_set = first(train_set, args.limit_train), first(val_set, args.limit_val)
    # DDP: each process takes every N-th sample of one shared order, shuffled by seed + epoch
    train_sampler = DistributedSampler(train_set, seed=args.seed) if ddp else None
    val_sampler = DistributedSampler(val_set, shuffle=False) if ddp else None  # pads: equal shares
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=not ddp,
                              sampler=train_sampler)
    val_loader = DataLoader(val_set, batch_size=args.batch_size, sampler=val_sampler)

    # Model, on the device Trainer(accelerator="auto") picks: a GPU (CUDA or Apple's MPS), else CPU.
    gpu = torch.accelerator.current_accelerator(check_available=True)  # None when there is no GPU
    device = gpu if gpu and args.accelerator != "cpu" else torch.device("cpu")
    model = ConvNet().to(device)
    if ddp:  # DDP: Lightning reseeds each process as it joins (DDPStrategy.setup_distributed)
        torch.manual_seed(args.seed)
    trained = DistributedDataParallel(model) if ddp else model  # DDP: backward() averages gradients

    # Optimisation: SGD with momentum; StepLR multiplies the lr by gamma after each epoch.
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=args.lr_step_gamma)

    # Checkpoints: best.ckpt (lowest val_loss), last.ckpt (every epoch); Lightning: ModelCheckpoint.
    run = claim_run_folders(args, EXAMPLE, "plain")  # DIR/EXAMPLE/plain/version_N, new each run
    checkpoints = Checkpoints(run.checkpoints) if run.checkpoints else None  # --dry-run: none
    first_epoch = 0
    if args.resume:  # Lightning: trainer.fit(..., ckpt_path=args.resume)
        first_epoch = resume(args, model, optimizer, scheduler, checkpoints)

    # The loop: train one epoch, then validate, `epochs` times (Lightning: trainer.fit).
    record = RunRecord.start(EXAMPLE, "plain", args)  # its losses, accuracies and time
    writer = SummaryWriter(run.logs) if run.logs else None  # --dry-run writes nothing
    for epoch in range(first_epoch, 1 if args.dry_run else args.epochs):
        if ddp:  # DDP: a new order each epoch, else every epoch repeats the first one's
            train_sampler.set_epoch(epoch)
        train_one_epoch(trained, train_loader, optimizer, device, epoch, args, record.train_loss,
                        writer)
        val_loss, val_accuracy = evaluate(model, val_loader, device, args)
        step = (epoch + 1) * len(train_loader)  # optimizer steps so far
        stop_if_diverged(torch.tensor(val_loss), step, args.lr, "val_loss")  # never the best
        print(record.end_epoch(epoch, val_loss, val_accuracy))
        if writer:  # epoch metrics go to the epoch's last step, as Lightning logs them
            writer.add_scalar("val_loss", val_loss, step - 1)
            writer.add_scalar("val_accuracy", val_accuracy, step - 1)
            writer.add_scalar("epoch", epoch, step - 1)
        scheduler.step()  # Lightning steps an epoch-interval scheduler after validation
        if checkpoints:  # after the scheduler's step, so a resumed run starts at the next lr
            checkpoint = make_checkpoint(epoch, step, model, optimizer, scheduler,
                                         run_flags(args))  # the flags it fixes: --lr, --seed, ...
            checkpoints.save(checkpoint, val_loss)

    # Test and predict with the best model, rebuilt from its file (Lightning: load_from_checkpoint).
    if checkpoints:
        model = ConvNet().to(device)
        model.load_state_dict(load_checkpoint_unchecked(checkpoints.best_path)["model"])
    if args.test:  # Lightning: trainer.test
        test_loss, test_accuracy = evaluate(model, DataLoader(test_set, batch_size=args.batch_size),
                                            device, args)
        print(record.end_test(test_loss, test_accuracy))
        if writer:  # trainer.test logs to the same TensorBoard run, after the last step
            for tag, value in (("test_loss", test_loss), ("test_accuracy", test_accuracy),
                               ("epoch", args.epochs)):
                writer.add_scalar(tag, value, args.epochs * len(train_loader))
    if args.predict:  # Lightning: trainer.predict
        predict_set = first(test_set, args.predict)
        loader = DataLoader(predict_set, batch_size=args.batch_size)
        record.predictions = predict(model, loader, device, args)
        show_predictions(record.predictions, predict_set)
    if writer:
        writer.close()
    return record.finish(args)  # prints the summary line (shared/run_record.py)


if __name__ == "__main__":
    with run_end.in_one_line(), process_setup.in_place():
        main()
