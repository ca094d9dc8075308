"""Step 2: stop a run at the step whose loss turns nan or infinite, in every twin alike.

The plain and Fabric twins call `stop_if_diverged` in their loops, the Lightning twin in
`on_train_batch_end` and `on_validation_epoch_end`. It raises `Diverged`, which
shared/run_end.py turns into one line and exit status 1, keeping the steps that ran.
"""

import torch

from shared.run_end import Diverged


def stop_if_diverged(loss: torch.Tensor, step: int, lr: float, name: str = "train_loss") -> None:
    """Stop the run if `loss`, the loss of optimizer step `step` (from 1), is nan or infinite.

    Training on would only spread the nan through every weight. Both twins check after the
    step, so both record the same steps; the run ends before validating or saving a checkpoint,
    so last.ckpt keeps the last good epoch. They check each epoch's `val_loss` the same way
    (`name`), before any checkpoint: a nan model is never saved as the best. Under DDP each
    process has its own loss, and all must stop at the same step (a process that trained on
    would wait forever for the others in its next all-reduce), so they agree first.
    """
    diverged = (~torch.isfinite(loss.detach())).to(torch.float32)
    if torch.distributed.is_initialized():
        torch.distributed.all_reduce(diverged)  # how many processes diverged at this step
    if diverged.item() > 0:
        here = not torch.isfinite(loss)
        where = f"is {loss.item()}" if here else "is not finite in another process"
        raise Diverged(f"{name} {where} at step {step}: training diverged, so it stopped there; "
                       f"lower --lr (it was {lr:g})")
