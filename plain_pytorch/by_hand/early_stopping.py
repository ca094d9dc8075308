"""Lightning's `EarlyStopping(monitor="val_loss", mode="min", patience=P, min_delta=D)`, by hand.

Mirrors lightning/pytorch/callbacks/early_stopping.py (`_evaluate_stopping_criteria`):
an epoch improves when `val_loss + min_delta < best` (float32, as Lightning compares the
logged tensor); otherwise a counter grows, and training stops once it reaches `patience`.
A non-finite val_loss stops at once (Lightning's `check_finite=True`). Lightning checks at
the end of each training epoch, after validation; the plain twins call `should_stop` there.
Left out: `stopping_threshold`, `divergence_threshold`, `mode="max"` (the examples use none).
"""

import torch


class EarlyStopping:
    def __init__(self, patience: int, min_delta: float = 0.0) -> None:
        self.patience, self.min_delta = patience, min_delta
        self.best_score = torch.tensor(float("inf"))
        self.wait_count = 0

    def should_stop(self, val_loss: float) -> bool:
        current = torch.tensor(val_loss)  # the float32 value Lightning logged, compared in float32
        if not torch.isfinite(current):
            return True
        if current + self.min_delta < self.best_score:  # improved by more than min_delta
            self.best_score, self.wait_count = current, 0
            return False
        self.wait_count += 1
        return self.wait_count >= self.patience

    def state_dict(self) -> dict:  # saved in checkpoints, so a resumed run keeps counting
        return {"best_score": self.best_score, "wait_count": self.wait_count, "patience": self.patience}

    def load_state_dict(self, state: dict) -> None:
        # Lightning restores `patience` too: a resumed run keeps the patience it was saved with,
        # whatever --early-stopping-patience says now (min_delta comes from the flag).
        self.best_score, self.wait_count, self.patience = state["best_score"], state["wait_count"], state["patience"]
