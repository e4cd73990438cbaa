"""Image augmentations of the cross-domain image discriminator (MoCoGAN-HD's
``warp``), vectorised over the batch.

    x = warp(frames, generator)      # [B, C, H, W] -> [B, C, H, W]

Every image gets a cut-out (a square of 1/8 to 1/4 of the side, zeroed, placed
along one of the four borders), then one of three equally likely warps:
a horizontal flip, a colour shift (U(-0.5, 0.5), on all channels or on one),
or an affine warp (rotation in (-180, 180) degrees, translation up to 10% of
the half-size, scale 1 +- 5%, reflected borders).

Random parameters are drawn on the CPU from ``generator`` (so a seed gives the
same augmentations on any device, and a training run resumes exactly); the
images are transformed on their own device.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _uniform(n: int, low, high, g: torch.Generator | None) -> torch.Tensor:
    return torch.rand(n, generator=g, dtype=torch.float64) * (high - low) + low


def cutout_boxes(n: int, size: int, g: torch.Generator | None = None, max_ratio: float = 0.25):
    """(top, left, side) of each image's cut-out square, as [n] int64 tensors.

    The square's side is a ratio U(max/2, max) of the image; it lies within
    ``max_ratio`` of one border (top, bottom, left or right, equally likely)
    and anywhere along it."""
    ratio = _uniform(n, max_ratio / 2, max_ratio, g)
    side = torch.randint(4, (n,), generator=g)
    u1, u2 = torch.rand(n, generator=g, dtype=torch.float64), torch.rand(n, generator=g, dtype=torch.float64)
    along = u2 * (1 - max_ratio)  # position along the border
    near = u1 * (max_ratio - ratio)  # distance from the top / left border
    far = (1 - max_ratio) + u1 * (max_ratio - ratio)  # from the bottom / right one
    top = torch.where(side == 0, near, torch.where(side == 1, far, along))
    left = torch.where(side == 2, near, torch.where(side == 3, far, along))
    to_px = lambda f: torch.round(f * (size - 1) - 0.5).clamp_(min=0).long()  # noqa: E731
    return to_px(top), to_px(left), torch.round(size * ratio - 0.5).long()


def _boxes(top, left, height, width, h: int, w: int, device) -> torch.Tensor:
    """[b, 1, h, w] bool masks of the boxes rows [top, top + height) x cols [left, left + width)."""
    top, left, height, width = (torch.as_tensor(t).to(device) for t in (top, left, height, width))
    rows = torch.arange(h, device=device)[None, :, None]
    cols = torch.arange(w, device=device)[None, None, :]
    return (
        (rows >= top[:, None, None])
        & (rows < (top + height)[:, None, None])
        & (cols >= left[:, None, None])
        & (cols < (left + width)[:, None, None])
    )[:, None]


def cutout(x: torch.Tensor, g: torch.Generator | None = None, max_ratio: float = 0.25) -> torch.Tensor:
    b, _, h, w = x.shape
    top, left, side = cutout_boxes(b, h, g, max_ratio)
    return x.masked_fill(_boxes(top, left, side, side, h, w, x.device), 0.0)


def affine_thetas(
    n: int, g: torch.Generator | None = None, angle: float = 180.0, translate: float = 0.1, scale: float = 0.05
) -> torch.Tensor:
    """[n, 2, 3] sampling matrices (affine_grid convention): rotation, scale, translation."""
    a = _uniform(n, -math.pi * angle / 180, math.pi * angle / 180, g)
    tx, ty = _uniform(n, -translate, translate, g), _uniform(n, -translate, translate, g)
    s = _uniform(n, 1 - scale, 1 + scale, g)
    cos, sin = s * torch.cos(a), s * torch.sin(a)
    return torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1).float()


def warp(x: torch.Tensor, g: torch.Generator | None = None) -> torch.Tensor:
    """Cut-out, then a flip, a colour shift or an affine warp per image (1/3 each)."""
    b, c = x.shape[:2]
    x = cutout(x, g)
    choice = torch.randint(3, (b,), generator=g)
    shift = _uniform(b, -0.5, 0.5, g).float()
    channel = torch.randint(c + 1, (b,), generator=g)  # 0: every channel, k: channel k - 1
    thetas = affine_thetas(b, g)

    dev = x.device
    choice_d = choice.to(dev)
    flipped = torch.where((choice_d == 0)[:, None, None, None], x.flip(-1), x)
    which = torch.arange(1, c + 1)[None, :]
    on = (channel[:, None] == 0) | (channel[:, None] == which)  # [b, c]
    colour = (shift[:, None] * on * (choice == 1)[:, None]).to(dev, x.dtype)
    out = flipped + colour[:, :, None, None]
    idx = (choice == 2).nonzero().flatten()
    if len(idx):
        sel = idx.to(dev)
        grid = F.affine_grid(thetas[idx].to(dev, x.dtype), [len(idx), *x.shape[1:]], align_corners=False)
        warped = F.grid_sample(x[sel], grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        out = out.index_copy(0, sel, warped)
    return out


def diff_augment(
    x: torch.Tensor, g: torch.Generator | None = None, translation: float = 0.125, cutout_ratio: float = 0.5
) -> torch.Tensor:
    """Differentiable augmentation for small datasets (DiffAugment's colour,
    translation and cut-out), applied identically to real and fake images
    before the image discriminator: random brightness (+-0.5), saturation
    (x 0..2) and contrast (x 0.5..1.5); an integer shift of up to
    ``translation`` of the size with zero fill; a zeroed square of
    ``cutout_ratio`` of the size. Differentiable with respect to ``x``."""
    b, _, h, w = x.shape
    dev, dt = x.device, x.dtype
    r = lambda: torch.rand(b, 1, 1, 1, generator=g).to(dev, dt)  # noqa: E731
    x = x + (r() - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (r() * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * (r() + 0.5) + mean
    # translation: sample the image at integer-shifted pixel centres, zeros outside
    sy, sx = int(h * translation + 0.5), int(w * translation + 0.5)
    ty = torch.randint(-sy, sy + 1, (b,), generator=g)
    tx = torch.randint(-sx, sx + 1, (b,), generator=g)
    ys = torch.arange(h)[None, :] - ty[:, None]  # [b, h] source rows
    xs = torch.arange(w)[None, :] - tx[:, None]
    valid = ((ys >= 0) & (ys < h))[:, :, None] & ((xs >= 0) & (xs < w))[:, None, :]
    idx = (ys.clamp(0, h - 1)[:, :, None] * w + xs.clamp(0, w - 1)[:, None, :]).to(dev)  # [b, h, w]
    flat = x.flatten(2)  # [b, c, h*w]
    x = flat.gather(2, idx.flatten(1)[:, None].expand(-1, x.shape[1], -1)).view_as(x)
    x = x * valid[:, None].to(dev, dt)
    # cut-out
    ch, cw = int(h * cutout_ratio + 0.5), int(w * cutout_ratio + 0.5)
    oy = torch.randint(0, h + (1 - ch % 2), (b,), generator=g) - ch // 2
    ox = torch.randint(0, w + (1 - cw % 2), (b,), generator=g) - cw // 2
    return x.masked_fill(_boxes(oy, ox, torch.full((b,), ch), torch.full((b,), cw), h, w, dev), 0.0)
