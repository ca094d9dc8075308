"""Lightning's `EarlyStopping(monitor="val_loss", mode="min", patience=P, min_delta=D)`, by hand.

Mirrors lightning/pytorch/callbacks/early_stopping.py (`_evaluate_stopping_criteria`):
an epoch improves when `val_loss + min_delta < best` (float32, as Lightning compares the
logged tensor); otherwise a counter grows, and training stops once it reaches `patience`.
A non-finite val_loss stops at once (Lightning's `check_finite=True`). Lightning checks at
the end of each training epoch, after validation; step 3's plain twin calls `should_stop`
there. `reason` is Lightning's own wording (its `stopping_reason_message`), so both twins
print the same line when they stop.
Left out: `stopping_threshold`, `divergence_threshold`, `mode="max"` (the examples use none).
"""

import torch


class EarlyStopping:
    def __init__(self, patience: int, min_delta: float = 0.0) -> None:
        self.patience, self.min_delta = patience, min_delta
        self.best_score = torch.tensor(float("inf"))
        self.wait_count = 0
        self.reason: str | None = None  # why training stopped, once it has

    def should_stop(self, val_loss: float) -> bool:
        current = torch.tensor(val_loss)  # the float32 value Lightning logged, compared in float32
        if not torch.isfinite(current):
            self.reason = (f"Monitored metric val_loss = {current} is not finite. Previous best "
                           f"value was {self.best_score:.3f}. Signaling Trainer to stop.")
            return True
        if current + self.min_delta < self.best_score:  # improved by more than min_delta
            self.best_score, self.wait_count = current, 0
            return False
        self.wait_count += 1
        if self.wait_count < self.patience:
            return False
        self.reason = (f"Monitored metric val_loss did not improve in the last {self.wait_count} "
                       f"records. Best score: {self.best_score:.3f}. Signaling Trainer to stop.")
        return True
