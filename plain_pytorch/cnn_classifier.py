"""MNIST with a small conv net and dropout, trained by a hand-written PyTorch loop.

Twin: lightning_version/cnn_classifier.py trains the same model on the same batches;
tests/test_parity.py proves both give the same per-step losses, bit for bit. Read the two
side by side (`diff -y`): every line here that the twin lacks is work Lightning does.

Run:  python -m plain_pytorch.cnn_classifier --data-dir ../shared/datasets
Flags (shared with the twin): python -m plain_pytorch.cnn_classifier --help

Left out on purpose: several GPUs (DDP), several optimizers, streaming datasets; the
16-mixed (float16) path is written but untested here, as this machine has no GPU.

The extras of the sum_dataset showcase (logging, checkpoints, early stopping, finders,
clipping, precision, accumulation, scheduler, test, predict) work here through the same
flags; see README, "The one-liner and what it does".
"""

import time
from functools import partial

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from plain_pytorch.by_hand.batch_size_finder import scale_batch_size
from plain_pytorch.by_hand.checkpointing import Checkpoints, make_checkpoint, resume
from plain_pytorch.by_hand.early_stopping import EarlyStopping
from plain_pytorch.by_hand.lr_finder import lr_range_test
from plain_pytorch.by_hand.precision import autocast, grad_scaler
from shared.cli import exit_on_bad_input, parse_args
from shared.data import first, load_mnist
from shared.metrics import RunRecord, output_dir
from shared.models import ConvNet
from shared.seeding import seed_everything, seed_worker, use_deterministic_algorithms

EXAMPLE = "cnn_classifier"


def training_loss(model, batch, device, precision):
    images, labels = (t.to(device) for t in batch)  # Lightning moves each batch for you
    with autocast(precision, device):  # Trainer(precision=...)
        logits = model(images)  # (B, 10); dropout draws from the global generator
        return F.cross_entropy(logits, labels)


def train_one_epoch(model, train_loader, optimizer, scaler, device, args, epoch, global_step, record, writer):
    """One pass over the training data; returns the number of optimizer steps taken so far."""
    model.train()  # dropout on. Lightning: the model is already in train mode; validation puts it back
    bar = tqdm(train_loader, desc=f"Epoch {epoch}", disable=args.no_progress)  # Lightning's default bar
    for batch_idx, batch in enumerate(bar):  # iter() draws the shuffling seed from the global generator
        if batch_idx % args.accumulate_grad_batches == 0:  # first batch of an accumulation window
            optimizer.zero_grad()  # Lightning calls zero_grad, backward, clipping and step for you
        loss = training_loss(model, batch, device, args.precision)
        # Divided, so that a window's summed gradients average its batches (Lightning does the same).
        scaler.scale(loss / args.accumulate_grad_batches).backward()
        record.train_loss.append(loss.item())
        if (batch_idx + 1) % args.accumulate_grad_batches == 0 or batch_idx + 1 == len(train_loader):
            scaler.unscale_(optimizer)  # 16-mixed: clip the true gradients, not the scaled ones
            if args.gradient_clip_val is not None:  # Trainer(gradient_clip_val=..., gradient_clip_algorithm=...)
                if args.gradient_clip_algorithm == "norm":
                    torch.nn.utils.clip_grad_norm_(model.parameters(), args.gradient_clip_val)
                else:
                    torch.nn.utils.clip_grad_value_(model.parameters(), args.gradient_clip_val)
            scaler.step(optimizer)  # optimizer.step(), unless 16-mixed gradients overflowed
            scaler.update()
            if writer:  # Lightning's logger: every step with log_every_n_steps=1, "epoch" alongside
                writer.add_scalar("train_loss", loss.item(), global_step)
                writer.add_scalar("epoch", epoch, global_step)
            global_step += 1
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if args.dry_run:
            break
    return global_step


@torch.no_grad()  # as Lightning validates during fit (trainer.test uses inference_mode: same numbers)
def evaluate(model, loader, device, args):
    model.eval()
    loss_sum = accuracy_sum = torch.tensor(0.0, device=device)
    seen = 0
    for batch in loader:  # iter() draws from the global generator even without shuffle
        images, labels = (t.to(device) for t in batch)
        with autocast(args.precision, device):
            logits = model(images)
            loss = F.cross_entropy(logits, labels)
        accuracy = (logits.argmax(dim=1) == labels).float().mean()
        # Weight each batch by its size, in float32, as Lightning's self.log(on_epoch=True) does:
        # the last batch may be smaller, and the same arithmetic gives the same bits.
        loss_sum = loss_sum + loss.float() * len(labels)
        accuracy_sum = accuracy_sum + accuracy * len(labels)
        seen += len(labels)
        if args.dry_run:
            break
    return (loss_sum / seen).item(), (accuracy_sum / seen).item()


@torch.no_grad()
def predict(model, loader, device, args):  # Lightning: trainer.predict with predict_step
    model.eval()
    predictions = []
    for images, _ in loader:
        with autocast(args.precision, device):
            predictions += model(images.to(device)).argmax(dim=1).tolist()
        if args.dry_run:  # fast_dev_run predicts one batch too
            break
    return predictions


def configure_optimizer(model, args, lr):  # Lightning: configure_optimizers
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=args.momentum)


def main(argv: list[str] | None = None) -> RunRecord:
    args = parse_args(EXAMPLE, argv)
    seed_everything(args.seed)  # before the model: its initial weights come from the global generator
    use_deterministic_algorithms(args.deterministic)  # Trainer(deterministic=...)

    # Data: tensors in memory; the loaders are the same in both twins.
    train_set, val_set, test_set, note = load_mnist(args.data_dir)
    print(note)
    loader = partial(DataLoader, batch_size=args.batch_size, num_workers=args.num_workers, worker_init_fn=seed_worker)
    train_loader = loader(first(train_set, args.limit_train), shuffle=True)
    val_loader = loader(first(val_set, args.limit_val))  # unshuffled: order cannot change an epoch mean

    # Model and optimizer, on the device Trainer(accelerator="auto") picks: CUDA, else Apple's MPS, else CPU.
    gpu = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else None
    device = torch.device(gpu if gpu and args.accelerator != "cpu" else "cpu")
    model = ConvNet().to(device)
    optimizer = configure_optimizer(model, args, args.lr)
    scaler = grad_scaler(args.precision, device)

    # What Lightning's logger and callbacks do, by hand.
    record = RunRecord.start(EXAMPLE, "plain", args)
    writer = None if args.dry_run else SummaryWriter(f"{args.log_dir}/{EXAMPLE}/plain")  # TensorBoardLogger
    early_stopping = checkpoints = None
    if args.early_stopping_patience:
        early_stopping = EarlyStopping(args.early_stopping_patience, args.early_stopping_min_delta)
    if args.checkpoint_dir and not args.dry_run:
        checkpoints = Checkpoints(f"{args.checkpoint_dir}/{EXAMPLE}/plain")

    # The tuner's searches, before training (Lightning: Tuner(trainer)).
    loss_of_batch = partial(training_loss, device=device, precision=args.precision)
    if args.find_lr and not args.dry_run:  # Lightning: Tuner(trainer).lr_find(model)
        # Also sets the optimizer's lr to the suggestion, as Lightning sets model.lr.
        lr_finder = lr_range_test(model, train_loader, optimizer, loss_of_batch, val_loader=val_loader, max_epochs=args.epochs)
        print(f"lr finder suggests {lr_finder.suggestion()}")
        lr_finder.plot(output_dir(args.log_dir, EXAMPLE, "plain") / "lr_find.png")
    if args.find_batch_size and not args.dry_run:  # Lightning: Tuner(trainer).scale_batch_size(model, mode=...)
        new_optimizer = partial(configure_optimizer, args=args, lr=optimizer.param_groups[0]["lr"])
        search = scale_batch_size(model, train_loader.dataset, loss_of_batch, new_optimizer, val_set=val_loader.dataset,
                                  mode=args.find_batch_size, init_val=args.batch_size, max_epochs=args.epochs,
                                  restore_rng=True)  # our checkpoints hold the RNG: the search hands it back
        print(f"batch-size finder chose {search.batch_size}")
        loader = partial(loader, batch_size=search.batch_size)
        train_loader = loader(first(train_set, args.limit_train), shuffle=True)
        val_loader = loader(first(val_set, args.limit_val))
    scheduler = None
    if args.lr_step_gamma:
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=args.lr_step_gamma)
    lr = optimizer.param_groups[0]["lr"]  # --lr, or the LR finder's suggestion
    hparams = dict(lr=lr, momentum=args.momentum, lr_step_gamma=args.lr_step_gamma)  # Lightning: save_hyperparameters()

    # The loop: train one epoch, then validate, `epochs` times (Lightning: trainer.fit).
    first_epoch, global_step = 0, 0
    if args.resume:  # Lightning: trainer.fit(..., ckpt_path=args.resume)
        first_epoch, global_step = resume(args.resume, model, optimizer, scheduler, early_stopping, checkpoints)
    start, epochs_done = time.perf_counter(), first_epoch
    for epoch in range(first_epoch, 1 if args.dry_run else args.epochs):
        global_step = train_one_epoch(model, train_loader, optimizer, scaler, device, args, epoch, global_step,
                                      record, writer)
        val_loss, val_accuracy = evaluate(model, val_loader, device, args)
        record.val_loss.append(val_loss)
        record.val_accuracy.append(val_accuracy)
        if writer:  # epoch metrics go to the epoch's last step, as Lightning logs them
            for tag, value in (("val_loss", val_loss), ("val_accuracy", val_accuracy), ("epoch", epoch)):
                writer.add_scalar(tag, value, global_step - 1)
        stop = early_stopping.should_stop(val_loss) if early_stopping else False  # EarlyStopping callback
        if scheduler:
            scheduler.step()  # Lightning steps an epoch-interval scheduler after the epoch
        if checkpoints:  # ModelCheckpoint callback: last, so a resumed run starts the next epoch as-is
            checkpoint = make_checkpoint(epoch, global_step, model, optimizer, scheduler, early_stopping, hparams)
            checkpoints.save(checkpoint, val_loss)
        if not args.no_progress:
            print(f"epoch {epoch}: val_loss {val_loss:.4f}, val_accuracy {val_accuracy:.4f}")
        epochs_done = epoch + 1
        if stop:
            print(f"early stopping: val_loss did not improve for {args.early_stopping_patience} epochs")
            break
    record.seconds = time.perf_counter() - start

    if args.test:  # Lightning: trainer.test
        test_loss, test_accuracy = evaluate(model, loader(test_set), device, args)
        record.test = {"test_loss": test_loss, "test_accuracy": test_accuracy}
        if writer:  # trainer.test logs to the same TensorBoard run, after the last step
            for tag, value in (("test_loss", test_loss), ("test_accuracy", test_accuracy), ("epoch", epochs_done)):
                writer.add_scalar(tag, value, global_step)
    if writer:
        writer.close()
    if args.predict:  # Lightning: trainer.predict
        record.predictions = predict(model, loader(first(test_set, args.predict)), device, args)
    print(record.summary())
    record.write(args)
    return record


if __name__ == "__main__":
    with exit_on_bad_input():
        main()
