"""A plain training loop, for tests/test_check_port.py; `--trap` puts one porting mistake in it."""

import argparse

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter
from toy import datasets, model

parser = argparse.ArgumentParser()
parser.add_argument("--trap", default="none",
                    choices=["none", "seed-late", "no-validation", "eval-mode", "extra-draw",
                             "scheduler-per-batch", "clip-one-layer", "val-mean"])
parser.add_argument("--noise", action="store_true")
parser.add_argument("--clip", type=float)
parser.add_argument("--log-dir")
parser.add_argument("--epochs", type=int, default=2)
args = parser.parse_args()

if args.trap == "seed-late":
    net = model()
torch.manual_seed(0)
if args.trap != "seed-late":
    net = model()
train_set, val_set = datasets(args.noise)
train_loader = DataLoader(train_set, batch_size=16, shuffle=True)
val_loader = DataLoader(val_set, batch_size=12)
optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
writer = SummaryWriter(args.log_dir) if args.log_dir else None
step = 0
for epoch in range(args.epochs):
    net.train()
    if args.trap == "eval-mode":
        net.eval()
    for x, y in train_loader:
        optimizer.zero_grad()
        if args.trap == "extra-draw":
            torch.rand(1)
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        if args.clip:
            clipped = net[0].parameters() if args.trap == "clip-one-layer" else net.parameters()
            torch.nn.utils.clip_grad_norm_(clipped, args.clip)
        optimizer.step()
        if args.trap == "scheduler-per-batch":
            scheduler.step()
        if writer:
            writer.add_scalar("train_loss", loss.item(), step)
            writer.add_scalar("epoch", epoch, step)
        step += 1
    if args.trap != "no-validation":
        net.eval()
        with torch.no_grad():
            total, means, seen = torch.tensor(0.0), [], 0
            for x, y in val_loader:
                batch_loss = F.cross_entropy(net(x), y)
                total, seen = total + batch_loss * len(y), seen + len(y)
                means.append(batch_loss.item())
        val_loss = sum(means) / len(means) if args.trap == "val-mean" else (total / seen).item()
        if writer:
            writer.add_scalar("val_loss", val_loss, step - 1)
            writer.add_scalar("epoch", epoch, step - 1)
    if args.trap != "scheduler-per-batch":
        scheduler.step()
if writer:
    writer.close()
