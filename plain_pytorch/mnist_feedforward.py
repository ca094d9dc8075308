"""MNIST with a 784-500-10 MLP, trained by a hand-written PyTorch loop.

Twin: lightning_version/mnist_feedforward.py trains the same model on the same batches;
tests/test_parity.py proves both give the same per-step losses, bit for bit. Read the two
side by side (`diff -y`): every line here that the twin lacks is work Lightning does.

Run:  python -m plain_pytorch.mnist_feedforward --data-dir ../shared/datasets
Flags (shared with the twin): python -m plain_pytorch.mnist_feedforward --help

Left out on purpose: logging, checkpoints, early stopping, mixed precision. This file is
only the loop that `Trainer.fit` runs for you: device, train, validate, repeat.
"""

import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from shared.cli import exit_on_bad_input, parse_args
from shared.data import first, load_mnist
from shared.metrics import RunRecord
from shared.models import FeedForward
from shared.seeding import seed_everything

EXAMPLE = "mnist_feedforward"


def train_one_epoch(model, train_loader, optimizer, device, record, dry_run):
    model.train()  # Lightning: the model is already in train mode; validation puts it back
    for batch in train_loader:  # iter() draws the shuffling seed from the global generator
        images, labels = (t.to(device) for t in batch)  # Lightning moves each batch for you
        optimizer.zero_grad()  # Lightning calls zero_grad, backward and step for you
        logits = model(images)  # (B, 10)
        loss = F.cross_entropy(logits, labels)
        loss.backward()
        optimizer.step()
        record.train_loss.append(loss.item())
        if dry_run:
            break


@torch.no_grad()  # Lightning validates under torch.inference_mode(): same numbers
def evaluate(model, val_loader, device, dry_run):
    model.eval()
    loss_sum = accuracy_sum = torch.tensor(0.0, device=device)
    seen = 0
    for batch in val_loader:  # iter() draws from the global generator even without shuffle
        images, labels = (t.to(device) for t in batch)
        logits = model(images)
        loss = F.cross_entropy(logits, labels)
        accuracy = (logits.argmax(dim=1) == labels).float().mean()
        # Weight each batch by its size, in float32, as Lightning's self.log(on_epoch=True) does:
        # the last batch may be smaller, and the same arithmetic gives the same bits.
        loss_sum = loss_sum + loss * len(labels)
        accuracy_sum = accuracy_sum + accuracy * len(labels)
        seen += len(labels)
        if dry_run:
            break
    return (loss_sum / seen).item(), (accuracy_sum / seen).item()


def main(argv: list[str] | None = None) -> RunRecord:
    args = parse_args(EXAMPLE, argv)
    seed_everything(args.seed)  # before the model: its initial weights come from the global generator

    # Data: tensors in memory; the loaders are the same in both twins.
    train_set, val_set, note = load_mnist(args.data_dir)
    print(note)
    train_loader = DataLoader(first(train_set, args.limit_train), batch_size=args.batch_size, shuffle=True)
    val_loader = DataLoader(first(val_set, args.limit_val), batch_size=args.batch_size)  # no shuffle needed

    # Model and optimizer, on the device we pick (Lightning: Trainer(accelerator=...)).
    use_cuda = args.accelerator != "cpu" and torch.cuda.is_available()
    device = torch.device("cuda" if use_cuda else "cpu")
    model = FeedForward(args.hidden_size).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    # The loop: train one epoch, then validate, `epochs` times (Lightning: trainer.fit).
    record = RunRecord.start(EXAMPLE, "plain", args)
    start = time.perf_counter()
    for epoch in range(1 if args.dry_run else args.epochs):
        train_one_epoch(model, train_loader, optimizer, device, record, args.dry_run)
        val_loss, val_accuracy = evaluate(model, val_loader, device, args.dry_run)
        record.val_loss.append(val_loss)
        record.val_accuracy.append(val_accuracy)
        print(f"epoch {epoch + 1}: val_loss {val_loss:.4f}, val_accuracy {val_accuracy:.4f}")
    record.seconds = time.perf_counter() - start

    print(record.summary())
    record.write(args)
    return record


if __name__ == "__main__":
    with exit_on_bad_input():
        main()
