"""Step 3 of 3: Lightning's extras, by hand, on a custom Dataset of random vectors.

Twin: lightning_version/sum_dataset.py switches each extra on with one argument or one
callback; tests/test_features.py holds every one against its twin here, bit for bit. Read
the two side by side, `diff -y -W 210 plain_pytorch/sum_dataset.py
lightning_version/sum_dataset.py`. Steps 1 and 2 taught the loop and a real training job.

This step teaches: a custom `Dataset` (shared/data.py: `SumDataset`, with `__len__` and
`__getitem__`); seeding every generator and each DataLoader worker, and deterministic
algorithms; early stopping; the learning-rate finder; the batch-size finder; gradient
clipping; mixed precision (bf16 on CPU, 16-mixed on CUDA); gradient accumulation. The
longer ones are written out in by_hand/, one file each.

Run:  python -m plain_pytorch.sum_dataset --early-stopping-patience 2 --find-lr

Left out on purpose: checkpoints, schedulers, test and predict (step 2); the finders leave
out clipping and accumulation, so the flags refuse those together.
"""

from functools import partial

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from by_hand.batch_size_finder import scale_batch_size
from by_hand.early_stopping import EarlyStopping
from by_hand.lr_finder import lr_range_test
from by_hand.precision import autocast, grad_scaler
from shared import process_setup, run_end
from shared.data import first, make_sum_dataset
from shared.flags import parse_args
from shared.models import SumMLP
from shared.run_folders import claim_run_folders
from shared.run_record import RunRecord
from shared.seeding import seed_everything, seed_worker, use_deterministic_algorithms

EXAMPLE = "sum_dataset"


def training_loss(model, batch, device, precision):
    """The forward pass and loss of one batch: the finders call it too."""
    features, labels = batch[0].to(device), batch[1].to(device)  # (B, F) and (B,)
    with autocast(precision, device):  # Trainer(precision=...): the forward in bfloat16
        logits = model(features)  # (B,) one logit per vector
        return F.binary_cross_entropy_with_logits(logits, labels)


def train_one_epoch(model, train_loader, optimizer, scaler, device, epoch, global_step, args,
                    losses, writer):
    """One pass over the training data, each loss onto `losses`; returns the steps taken so far."""
    model.train()
    bar = tqdm(train_loader, desc=f"Epoch {epoch}", disable=args.no_progress)
    for batch_idx, batch in enumerate(bar):  # workers, if any, start here and build the batches
        if batch_idx % args.accumulate_grad_batches == 0:  # a new accumulation window
            optimizer.zero_grad()
        loss = training_loss(model, batch, device, args.precision)
        # Divided, so that a window's summed gradients average its batches, as Lightning does.
        scaler.scale(loss / args.accumulate_grad_batches).backward()
        losses.append(loss.item())  # each batch's, undivided: Lightning logs that one too
        last_batch = batch_idx + 1 == len(train_loader)  # a short last window steps too
        if (batch_idx + 1) % args.accumulate_grad_batches == 0 or last_batch:
            scaler.unscale_(optimizer)  # 16-mixed: clip the true gradients, not the scaled ones
            if args.gradient_clip_val is not None:  # Trainer(gradient_clip_val=...)
                if args.gradient_clip_algorithm == "norm":
                    torch.nn.utils.clip_grad_norm_(model.parameters(), args.gradient_clip_val)
                else:
                    torch.nn.utils.clip_grad_value_(model.parameters(), args.gradient_clip_val)
            scaler.step(optimizer)  # optimizer.step(), unless 16-mixed gradients overflowed
            scaler.update()
            if writer:  # one point per optimizer step, as Lightning logs it
                writer.add_scalar("train_loss", loss.item(), global_step)
                writer.add_scalar("epoch", epoch, global_step)
            global_step += 1
        if args.dry_run:
            break
    return global_step


@torch.no_grad()
def evaluate(model, loader, device, args):
    """Mean loss and accuracy over `loader`, each batch weighted by its size, as self.log does."""
    model.eval()
    loss_sum = accuracy_sum = torch.tensor(0.0, device=device)
    seen = 0
    for features, labels in loader:
        features, labels = features.to(device), labels.to(device)
        with autocast(args.precision, device):  # Lightning validates under autocast too
            logits = model(features)
            loss = F.binary_cross_entropy_with_logits(logits, labels)
        accuracy = ((logits > 0).float() == labels).float().mean()  # logit > 0 means p > 0.5
        loss_sum = loss_sum + loss.float() * len(labels)  # a short last batch counts for its size
        accuracy_sum = accuracy_sum + accuracy * len(labels)
        seen += len(labels)
        if args.dry_run:
            break
    return (loss_sum / seen).item(), (accuracy_sum / seen).item()


def main(argv: list[str] | None = None) -> RunRecord:
    args = parse_args(EXAMPLE, "plain", argv, about=__doc__)
    seed_everything(args.seed)  # Python's, NumPy's and torch's generators, as L.seed_everything
    use_deterministic_algorithms(args.deterministic)  # Trainer(deterministic=...)

    # Data: a custom Dataset; worker processes, if any, each reseeded as Lightning reseeds them.
    train_set, val_set, _, note = make_sum_dataset(args.num_samples, args.num_features, args.seed)
    print(note)  # --data-dir is not used
    loader = partial(DataLoader, num_workers=args.num_workers, worker_init_fn=seed_worker)
    train_loader = loader(first(train_set, args.limit_train), batch_size=args.batch_size,
                          shuffle=True)
    val_loader = loader(first(val_set, args.limit_val), batch_size=args.batch_size)

    # Model, on the device Trainer(accelerator="auto") picks: a GPU (CUDA or Apple's MPS), else CPU.
    gpu = torch.accelerator.current_accelerator(check_available=True)  # None when there is no GPU
    device = gpu if gpu and args.accelerator != "cpu" else torch.device("cpu")
    model = SumMLP(args.num_features, args.hidden_size).to(device)

    # Optimisation; with --precision 16-mixed a GradScaler scales the loss (bf16 needs none).
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scaler = grad_scaler(args.precision, device)

    # The finders, before training (Lightning: Tuner(trainer)).
    record = RunRecord.start(EXAMPLE, "plain", args)  # its losses, accuracies and time
    run = claim_run_folders(args, EXAMPLE, "plain")  # LOG_DIR/EXAMPLE/plain/version_N, new each run
    loss_of_batch = partial(training_loss, device=device, precision=args.precision)
    if args.find_lr and not args.dry_run:  # sets the optimizer's lr to the suggestion
        lr_finder = lr_range_test(model, train_loader, optimizer, loss_of_batch,
                                  val_loader=val_loader, max_epochs=args.epochs)
        print(f"lr finder suggests {lr_finder.suggestion()}")
        lr_finder.plot(run.logs / "lr_find.png")
    if args.find_batch_size and not args.dry_run:
        def new_optimizer(model):  # Lightning's trials use configure_optimizers, at the current lr
            return torch.optim.Adam(model.parameters(), lr=optimizer.param_groups[0]["lr"])
        search = scale_batch_size(model, train_loader.dataset, loss_of_batch, new_optimizer,
                                  val_set=val_loader.dataset, mode=args.find_batch_size,
                                  init_val=args.batch_size, max_epochs=args.epochs)
        print(f"batch-size finder chose {search.batch_size}")
        train_loader = loader(train_loader.dataset, batch_size=search.batch_size, shuffle=True)
        val_loader = loader(val_loader.dataset, batch_size=search.batch_size)
    early_stopping = None
    if args.early_stopping_patience:  # Lightning: the EarlyStopping callback
        early_stopping = EarlyStopping(args.early_stopping_patience, args.early_stopping_min_delta)

    # The loop: train one epoch, then validate, until `epochs` or early stopping.
    writer = SummaryWriter(run.logs) if run.logs else None  # --dry-run writes nothing
    global_step = 0
    for epoch in range(1 if args.dry_run else args.epochs):
        global_step = train_one_epoch(model, train_loader, optimizer, scaler, device, epoch,
                                      global_step, args, record.train_loss, writer)
        val_loss, val_accuracy = evaluate(model, val_loader, device, args)
        print(record.end_epoch(epoch, val_loss, val_accuracy))
        if writer:  # epoch metrics go to the epoch's last step, as Lightning logs them
            writer.add_scalar("val_loss", val_loss, global_step - 1)
            writer.add_scalar("val_accuracy", val_accuracy, global_step - 1)
            writer.add_scalar("epoch", epoch, global_step - 1)
        if early_stopping and not args.dry_run and early_stopping.should_stop(val_loss):
            print(f"early stopping after epoch {epoch}: {early_stopping.reason}")
            break
    if writer:
        writer.close()
    return record.finish(args)  # prints the summary line (shared/run_record.py)


if __name__ == "__main__":
    with run_end.in_one_line(), process_setup.in_place():
        main()
