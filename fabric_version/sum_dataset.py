"""Step 3 of 3: Lightning's extras on a custom Dataset, with Fabric: what it gives, what is yours.

The middle way: plain_pytorch/sum_dataset.py writes each extra by hand,
lightning_version/sum_dataset.py switches each on with one Trainer argument or callback.
Fabric gives some of them a call of its own and leaves the rest to you, written as the
plain twin writes them (by_hand/); tests/test_features.py holds every one
against both twins, bit for bit. Read it beside the plain twin, `diff -y -W 210
plain_pytorch/sum_dataset.py fabric_version/sum_dataset.py`. Steps 1 and 2 taught Fabric.

This step teaches: `fabric.seed_everything(workers=True)`, which also reseeds each
DataLoader worker; `Fabric(precision="bf16-mixed")`, which runs every forward of the set-up
model under autocast; `fabric.clip_gradients`; `fabric.no_backward_sync` for accumulation.
Still yours, from by_hand/: early stopping and both finders (given
`fabric.backward`), and deterministic algorithms.

Run:  python -m fabric_version.sum_dataset --early-stopping-patience 2 --find-lr

Left out on purpose: checkpoints, schedulers, test and predict (step 2); the finders leave
out clipping and accumulation, so the flags refuse those together.
"""

from functools import partial

import lightning as L
import torch
import torch.nn.functional as F
from lightning.fabric.loggers import TensorBoardLogger
from torch.utils.data import DataLoader
from tqdm import tqdm

from by_hand.batch_size_finder import scale_batch_size
from by_hand.early_stopping import EarlyStopping
from by_hand.lr_finder import lr_range_test
from shared import process_setup, run_end
from shared.data import first, make_sum_dataset
from shared.flags import parse_args
from shared.models import SumMLP
from shared.run_folders import claim_run_folders
from shared.run_record import RunRecord
from shared.seeding import use_deterministic_algorithms

EXAMPLE = "sum_dataset"


def training_loss(model, batch, fabric):
    """The forward pass and loss of one batch: the finders call it too."""
    features, labels = fabric.to_device(batch)  # (B, F) and (B,); a finder's own batches too
    logits = model(features)  # (B,); Fabric runs the forward under autocast, returns float32
    return F.binary_cross_entropy_with_logits(logits, labels)


def train_one_epoch(model, train_loader, optimizer, fabric, epoch, global_step, args, losses):
    """One pass over the training data, each loss onto `losses`; returns the steps taken so far."""
    model.train()
    bar = tqdm(train_loader, desc=f"Epoch {epoch}", disable=args.no_progress)
    for batch_idx, batch in enumerate(bar):  # workers, if any, start here and build the batches
        if batch_idx % args.accumulate_grad_batches == 0:  # a new accumulation window
            optimizer.zero_grad()
        last_batch = batch_idx + 1 == len(train_loader)  # a short last window steps too
        window_ends = (batch_idx + 1) % args.accumulate_grad_batches == 0 or last_batch
        with fabric.no_backward_sync(model, enabled=not window_ends):  # DDP: sync at the end only
            loss = training_loss(model, batch, fabric)
            # Divided, so that a window's summed gradients average its batches, as Lightning does.
            fabric.backward(loss / args.accumulate_grad_batches)
        losses.append(loss.item())  # each batch's, undivided: Lightning logs that one too
        if window_ends:
            if args.gradient_clip_val is not None:  # unscales first, for 16-mixed
                clip = {"norm": "max_norm", "value": "clip_val"}[args.gradient_clip_algorithm]
                fabric.clip_gradients(model, optimizer, **{clip: args.gradient_clip_val},
                                      error_if_nonfinite=False)  # as the Trainer clips
            optimizer.step()  # 16-mixed: Fabric's GradScaler steps, unless gradients overflowed
            fabric.log_dict({"train_loss": loss, "epoch": epoch}, global_step)  # per step
            global_step += 1
        if args.dry_run:
            break
    return global_step


@torch.no_grad()
def evaluate(model, loader, fabric, args):
    """Mean loss and accuracy over `loader`, each batch weighted by its size, as self.log does."""
    model.eval()
    loss_sum = accuracy_sum = torch.tensor(0.0, device=fabric.device)
    seen = 0
    for features, labels in loader:
        logits = model(features)  # under autocast too, as Lightning validates
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        accuracy = ((logits > 0).float() == labels).float().mean()  # logit > 0 means p > 0.5
        loss_sum = loss_sum + loss * len(labels)  # a short last batch counts for its size
        accuracy_sum = accuracy_sum + accuracy * len(labels)
        seen += len(labels)
        if args.dry_run:
            break
    return (loss_sum / seen).item(), (accuracy_sum / seen).item()


def main(argv: list[str] | None = None) -> RunRecord:
    args = parse_args(EXAMPLE, "fabric", argv, about=__doc__)
    run = claim_run_folders(args, EXAMPLE, "fabric")  # LOG_DIR/EXAMPLE/fabric/version_N
    loggers = [TensorBoardLogger(f"{args.log_dir}/{EXAMPLE}", "fabric", version=run.version)]
    fabric = L.Fabric(accelerator=args.accelerator, devices=1, precision=args.precision,
                      loggers=loggers if run.logs else [])
    fabric.seed_everything(args.seed, workers=True)  # workers=True: each worker reseeded
    use_deterministic_algorithms(args.deterministic)  # still yours: Fabric has no such flag

    # Data: a custom Dataset; with workers, setup_dataloaders gives each a seeding function.
    train_set, val_set, _, note = make_sum_dataset(args.num_samples, args.num_features, args.seed)
    print(note)  # --data-dir is not used
    loader = partial(DataLoader, num_workers=args.num_workers)
    train_loader = loader(first(train_set, args.limit_train), batch_size=args.batch_size,
                          shuffle=True)
    val_loader = loader(first(val_set, args.limit_val), batch_size=args.batch_size)
    train_loader, val_loader = fabric.setup_dataloaders(train_loader, val_loader)

    # Model and optimisation, set up by Fabric: its device, and its precision in every forward.
    model = SumMLP(args.num_features, args.hidden_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    model, optimizer = fabric.setup(model, optimizer)

    # The finders, before training: by hand, as in the plain twin (Fabric has none).
    record = RunRecord.start(EXAMPLE, "fabric", args)  # its losses, accuracies and time
    loss_of_batch = partial(training_loss, fabric=fabric)
    if args.find_lr and not args.dry_run:  # sets the optimizer's lr to the suggestion
        lr_finder = lr_range_test(model, train_loader, optimizer, loss_of_batch,
                                  val_loader=val_loader, max_epochs=args.epochs,
                                  backward=fabric.backward)
        print(f"lr finder suggests {lr_finder.suggestion()}")
        lr_finder.plot(run.logs / "lr_find.png")
    if args.find_batch_size and not args.dry_run:
        def new_optimizer(model):  # Lightning's trials use configure_optimizers, at the current lr
            return torch.optim.Adam(model.parameters(), lr=optimizer.param_groups[0]["lr"])
        search = scale_batch_size(model, train_loader.dataset, loss_of_batch, new_optimizer,
                                  val_set=val_loader.dataset, mode=args.find_batch_size,
                                  init_val=args.batch_size, max_epochs=args.epochs,
                                  backward=fabric.backward)
        print(f"batch-size finder chose {search.batch_size}")
        train_loader, val_loader = fabric.setup_dataloaders(
            loader(train_loader.dataset, batch_size=search.batch_size, shuffle=True),
            loader(val_loader.dataset, batch_size=search.batch_size))
    early_stopping = None
    if args.early_stopping_patience:  # by hand, as in the plain twin: Fabric has no callbacks
        early_stopping = EarlyStopping(args.early_stopping_patience, args.early_stopping_min_delta)

    # The loop: train one epoch, then validate, until `epochs` or early stopping.
    global_step = 0
    for epoch in range(1 if args.dry_run else args.epochs):
        global_step = train_one_epoch(model, train_loader, optimizer, fabric, epoch, global_step,
                                      args, record.train_loss)
        val_loss, val_accuracy = evaluate(model, val_loader, fabric, args)
        print(record.end_epoch(epoch, val_loss, val_accuracy))
        fabric.log_dict({"val_loss": val_loss, "val_accuracy": val_accuracy, "epoch": epoch},
                        global_step - 1)  # the epoch's last step, as Lightning logs them
        if early_stopping and not args.dry_run and early_stopping.should_stop(val_loss):
            print(f"early stopping after epoch {epoch}: {early_stopping.reason}")
            break
    for logger in fabric.loggers:  # flush TensorBoard's file
        logger.finalize("success")
    return record.finish(args)  # prints the summary line (shared/run_record.py)


if __name__ == "__main__":
    with run_end.in_one_line(), process_setup.in_place():
        main()
