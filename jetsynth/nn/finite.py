"""Whether a tensor read from a file holds only finite values, in one pass and without a mask as
large as the tensor."""

from __future__ import annotations

import torch


def all_finite(tensor: torch.Tensor) -> bool:
    """True when every value is finite (no NaN, no ±infinity); non-float tensors always are.
    Exact: the float64 sum of finite fp32/fp16/bf16 values cannot overflow (|sum| <= count ×
    3.4e38 stays far below 1.8e308), and a NaN or an infinity makes the sum NaN or infinite."""
    if not tensor.is_floating_point():
        return True
    return bool(torch.isfinite(tensor.sum(dtype=torch.float64)))
