"""Lightning's `Trainer(precision=...)`, by hand: autocast and, for float16, a GradScaler.

Mirrors lightning/pytorch/plugins/precision/amp.py (`MixedPrecision`):
- "32-true": nothing changes.
- "bf16-mixed": every forward (training, validation, test, predict steps) runs under
  `torch.autocast(device, dtype=torch.bfloat16, cache_enabled=False)`; backward and the
  optimizer step run outside it, in float32 weights. bfloat16 has float32's range, so no
  loss scaling is needed.
- "16-mixed" (CUDA only): float16 gradients can underflow, so the loss is multiplied by a
  scale before backward; `unscale_` divides the gradients back before clipping, and
  `step` skips the update when they overflowed. Untested here: this machine has no GPU.
"""

import torch

AUTOCAST_DTYPES = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def autocast(precision: str, device: torch.device) -> torch.autocast:
    dtype = AUTOCAST_DTYPES.get(precision)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None, cache_enabled=False)


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """A GradScaler that only scales for "16-mixed"; otherwise its calls pass straight through."""
    return torch.amp.GradScaler(device.type, enabled=precision == "16-mixed")
