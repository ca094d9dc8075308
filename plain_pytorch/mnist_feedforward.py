"""Step 1 of 3: the classic MNIST 784-500-10 MLP, trained by a hand-written PyTorch loop.

Twin: lightning_version/mnist_feedforward.py trains the same model on the same batches;
tests/test_parity.py proves both give the same per-step losses, bit for bit. Read the two
side by side, `diff -y -W 210 plain_pytorch/mnist_feedforward.py
lightning_version/mnist_feedforward.py`: each line here that the twin lacks is work the
Trainer does for you.

This step teaches: choosing a device and moving batches to it; the DataLoader;
`model.train()` and `model.eval()`; the training step (zero_grad, forward, loss, backward,
step); validation under `torch.no_grad()`; accuracy; TensorBoard; a progress bar; a
one-batch `--dry-run`.

Run:  python -m plain_pytorch.mnist_feedforward

Left out on purpose, for the later steps: dropout, a scheduler, checkpoints, test and
predict (step 2, cnn_classifier.py); a custom Dataset, worker seeding, early stopping, the
finders, clipping, mixed precision and accumulation (step 3, sum_dataset.py).
"""

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from shared import process_setup, run_end
from shared.data import first, load_mnist
from shared.flags import parse_args
from shared.models import FeedForward
from shared.run_folders import claim_run_folders
from shared.run_record import RunRecord

EXAMPLE = "mnist_feedforward"


def train_one_epoch(model, train_loader, optimizer, device, epoch, args, losses, writer):
    """One pass over the training data: one optimizer step per batch; each loss onto `losses`."""
    model.train()  # training mode; the Trainer switches modes for you
    bar = tqdm(train_loader, desc=f"Epoch {epoch}", disable=args.no_progress)  # Lightning's bar
    for batch_idx, (images, labels) in enumerate(bar):  # images (B, 1, 28, 28), labels (B,)
        images, labels = images.to(device), labels.to(device)  # Lightning moves batches for you
        optimizer.zero_grad()  # Lightning calls zero_grad, backward and step around training_step
        logits = model(images)  # (B, 10)
        loss = F.cross_entropy(logits, labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())  # .item(): the loss as a Python float
        if writer:  # Lightning: self.log("train_loss", loss), every step with log_every_n_steps=1
            step = epoch * len(train_loader) + batch_idx
            writer.add_scalar("train_loss", loss.item(), step)
            writer.add_scalar("epoch", epoch, step)  # Lightning logs the epoch beside each step
        if args.dry_run:  # Lightning: fast_dev_run
            break


@torch.no_grad()  # no gradients needed; Lightning validates under no_grad too
def evaluate(model, loader, device, args):
    """Mean loss and accuracy over `loader`, each batch weighted by its size, as self.log does."""
    model.eval()  # Lightning switches to eval mode for validation (dropout off, in step 2)
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
    return (loss_sum / seen).item(), (accuracy_sum / seen).item()


def main(argv: list[str] | None = None) -> RunRecord:
    args = parse_args(EXAMPLE, "plain", argv, about=__doc__)
    torch.manual_seed(args.seed)  # Lightning: L.seed_everything; same seed, same initial weights

    # Data: MNIST as normalised tensors in memory; the DataLoader cuts them into batches.
    train_set, val_set, _, note = load_mnist(args.data_dir, args.dataset)
    print(note)
    train_loader = DataLoader(first(train_set, args.limit_train), batch_size=args.batch_size,
                              shuffle=True)
    val_loader = DataLoader(first(val_set, args.limit_val), batch_size=args.batch_size)

    # Model, on the device Trainer(accelerator="auto") picks: a GPU (CUDA or Apple's MPS), else CPU.
    gpu = torch.accelerator.current_accelerator(check_available=True)  # None when there is no GPU
    device = gpu if gpu and args.accelerator != "cpu" else torch.device("cpu")
    model = FeedForward(args.hidden_size).to(device)

    # Optimisation (Lightning: configure_optimizers).
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    # The loop: train one epoch, then validate, `epochs` times (Lightning: trainer.fit).
    record = RunRecord.start(EXAMPLE, "plain", args)  # its losses, accuracies and time
    run = claim_run_folders(args, EXAMPLE, "plain")  # LOG_DIR/EXAMPLE/plain/version_N, new each run
    writer = SummaryWriter(run.logs) if run.logs else None  # --dry-run writes nothing
    for epoch in range(1 if args.dry_run else args.epochs):
        train_one_epoch(model, train_loader, optimizer, device, epoch, args, record.train_loss,
                        writer)
        val_loss, val_accuracy = evaluate(model, val_loader, device, args)
        print(record.end_epoch(epoch, val_loss, val_accuracy))
        if writer:  # epoch metrics go to the epoch's last step, as Lightning logs them
            step = (epoch + 1) * len(train_loader) - 1
            writer.add_scalar("val_loss", val_loss, step)
            writer.add_scalar("val_accuracy", val_accuracy, step)
            writer.add_scalar("epoch", epoch, step)
    if writer:
        writer.close()
    return record.finish(args)  # prints the summary line (shared/run_record.py)


if __name__ == "__main__":
    with run_end.in_one_line(), process_setup.in_place():
        main()
