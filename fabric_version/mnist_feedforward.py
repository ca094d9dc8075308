"""Step 1 of 3: the classic MNIST 784-500-10 MLP, trained by your own loop with Lightning Fabric.

The middle way between the twins. plain_pytorch/mnist_feedforward.py writes every line by
hand; lightning_version/mnist_feedforward.py hands the whole loop to the Trainer. Here the
loop stays yours, and Fabric takes the device and `backward`; tests/test_parity.py proves
all three give the same per-step losses, bit for bit. Read it beside the plain twin, `diff -y
-W 210 plain_pytorch/mnist_feedforward.py fabric_version/mnist_feedforward.py`: each line
that changed is a line Fabric took over, and each line that did not is still yours.

This step teaches: `L.Fabric(accelerator=..., devices=...)`; `fabric.setup(model, optimizer)`
and `fabric.setup_dataloaders(...)` in place of choosing a device and moving batches;
`fabric.backward(loss)`; `fabric.log_dict` into a TensorBoardLogger. Still yours: the loop,
`model.train()` and `model.eval()`, validation, the progress bar, a one-batch `--dry-run`.

Run:  python -m fabric_version.mnist_feedforward

Left out on purpose, for the later steps: dropout, a scheduler, checkpoints, test and
predict (step 2, cnn_classifier.py); a custom Dataset, worker seeding, early stopping, the
finders, clipping, mixed precision and accumulation (step 3, sum_dataset.py).
"""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.fabric.loggers import TensorBoardLogger
from torch.utils.data import DataLoader
from tqdm import tqdm

from shared import process_setup, run_end
from shared.data import first, load_mnist
from shared.flags import parse_args
from shared.models import FeedForward
from shared.run_folders import claim_run_folders
from shared.run_record import RunRecord

EXAMPLE = "mnist_feedforward"


def train_one_epoch(model, train_loader, optimizer, fabric, epoch, args, losses):
    """One pass over the training data: one optimizer step per batch; each loss onto `losses`."""
    model.train()  # training mode: with Fabric, still yours to switch
    bar = tqdm(train_loader, desc=f"Epoch {epoch}", disable=args.no_progress)  # yours too
    for batch_idx, (images, labels) in enumerate(bar):  # images (B, 1, 28, 28), labels (B,)
        # no .to(device): batches arrive on the device Fabric picked
        optimizer.zero_grad()
        logits = model(images)  # (B, 10)
        loss = F.cross_entropy(logits, labels)
        fabric.backward(loss)  # loss.backward(), plus what a precision or strategy needs
        optimizer.step()
        losses.append(loss.item())  # .item(): the loss as a Python float
        step = epoch * len(train_loader) + batch_idx
        fabric.log_dict({"train_loss": loss, "epoch": epoch}, step)  # to TensorBoard, if any
        if args.dry_run:  # Lightning: fast_dev_run
            break


@torch.no_grad()  # no gradients needed: with Fabric, still yours to say
def evaluate(model, loader, fabric, args):
    """Mean loss and accuracy over `loader`, each batch weighted by its size, as self.log does."""
    model.eval()
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
    return (loss_sum / seen).item(), (accuracy_sum / seen).item()


def main(argv: list[str] | None = None) -> RunRecord:
    args = parse_args(EXAMPLE, "fabric", argv, about=__doc__)
    run = claim_run_folders(args, EXAMPLE, "fabric")  # LOG_DIR/EXAMPLE/fabric/version_N
    loggers = [TensorBoardLogger(f"{args.log_dir}/{EXAMPLE}", "fabric", version=run.version)]
    fabric = L.Fabric(accelerator=args.accelerator, devices=1,  # "auto": CUDA, else MPS, else CPU
                      loggers=loggers if run.logs else [])  # --dry-run writes nothing
    fabric.seed_everything(args.seed)  # same seed, same initial weights

    # Data: MNIST as normalised tensors in memory; the DataLoader cuts them into batches.
    train_set, val_set, _, note = load_mnist(args.data_dir, args.dataset)
    print(note)
    train_loader = DataLoader(first(train_set, args.limit_train), batch_size=args.batch_size,
                              shuffle=True)
    val_loader = DataLoader(first(val_set, args.limit_val), batch_size=args.batch_size)
    train_loader, val_loader = fabric.setup_dataloaders(train_loader, val_loader)  # to the device

    # Model and optimisation; fabric.setup puts the model on Fabric's device.
    model = FeedForward(args.hidden_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    model, optimizer = fabric.setup(model, optimizer)

    # The loop: train one epoch, then validate, `epochs` times; yours, as in the plain twin.
    record = RunRecord.start(EXAMPLE, "fabric", args)  # its losses, accuracies and time
    for epoch in range(1 if args.dry_run else args.epochs):
        train_one_epoch(model, train_loader, optimizer, fabric, epoch, args, record.train_loss)
        val_loss, val_accuracy = evaluate(model, val_loader, fabric, args)
        print(record.end_epoch(epoch, val_loss, val_accuracy))
        fabric.log_dict({"val_loss": val_loss, "val_accuracy": val_accuracy, "epoch": epoch},
                        (epoch + 1) * len(train_loader) - 1)  # the epoch's last step
    for logger in fabric.loggers:  # flush TensorBoard's file (the Trainer does it after fit)
        logger.finalize("success")
    return record.finish(args)  # prints the summary line (shared/run_record.py)


if __name__ == "__main__":
    with run_end.in_one_line(), process_setup.in_place():
        main()
