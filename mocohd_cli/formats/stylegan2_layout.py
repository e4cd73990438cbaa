"""Facts shared by the StyleGAN2 checkpoint readers."""

from __future__ import annotations

import torch

from ..errors import MocohdError
from ..ops import FIR_TAPS


def infer_channel_layout(channels: dict[int, int]) -> tuple[int, int]:
    """Find (channel_base, channel_max) with channels[r] == min(base // r, max) for every r."""
    cmax = max(channels.values())
    # Any layer below the cap has c == base // r, so base = c * r (for the usual
    # power-of-two bases); if every layer is capped, any base >= cmax * R works.
    candidates = sorted({c * r for r, c in channels.items()} | {cmax * max(channels)})
    for base in candidates:
        if all(min(base // r, cmax) == c for r, c in channels.items()):
            return base, cmax
    raise MocohdError(
        f"unknown architecture: channel widths {dict(sorted(channels.items()))} "
        "do not follow min(base / resolution, max)"
    )


def check_fir_kernel(kernel: torch.Tensor, name: str) -> None:
    """Refuse checkpoints whose resampling filter is not the [1,3,3,1] binomial filter."""
    k = kernel.detach().double()
    f = torch.tensor(FIR_TAPS, dtype=torch.float64)
    expected = torch.outer(f, f) if k.ndim == 2 else f
    if k.shape != expected.shape or not torch.allclose(k / k.sum(), expected / expected.sum(), atol=1e-6):
        raise MocohdError(f"unknown architecture: {name} is not the [1,3,3,1] up-sampling filter")
