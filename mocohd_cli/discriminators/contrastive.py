"""The contrastive side of the cross-domain image discriminator: an EMA copy
of D_I (momentum 0.999), a queue of its projections (4096, gathered across
ranks), and the InfoNCE loss (temperature 0.07) as MoCoGAN-HD computes it.

    C = ContrastiveDiscriminator(D)        # QUEUE, MOMENTUM, TEMPERATURE: the official values
    with torch.no_grad():
        C.enqueue(C.ema(frame1_aug, proj_only=True), C.ema(frame_t_aug, proj_only=True))
    loss = C.loss(p1, p1b, pt, ptb)        # two augmentations of frame 1, two of frame t
    C.update_ema()                         # after each D_I step

Two queues are kept, one for projections of first frames and one for later
frames; each loss term contrasts one kind only.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UsageError
from .snresnet import PROJ_DIM

QUEUE = 4096  # projections kept per queue (whole global batches of them)
MOMENTUM = 0.999  # of the EMA copy of D_I
TEMPERATURE = 0.07  # of the InfoNCE logits


def info_nce(a: torch.Tensor, b: torch.Tensor, queue: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE with the positives a_i <-> b_i, as the official loss: the rows
    [a; b] (2n) are compared by cosine similarity with [a; b; queue]; logits
    are similarity / temperature, except each row's similarity with itself,
    which is kept with logit 0 (not removed); the loss is the mean
    cross-entropy of picking the partner."""
    n = a.shape[0]
    rows = torch.cat([a, b]).float()
    keys = torch.cat([a, b, queue.to(a.device)]).float()

    def unit(t):
        return t / t.norm(dim=1, keepdim=True).clamp(min=1e-8)

    logits = unit(rows) @ unit(keys).T / temperature
    eye = torch.zeros_like(logits, dtype=torch.bool)
    eye[:, : 2 * n].fill_diagonal_(True)
    logits = logits.masked_fill(eye, 0.0)
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(a.device)
    return F.cross_entropy(logits, target)


class ContrastiveDiscriminator(nn.Module):
    def __init__(
        self,
        D: nn.Module,
        proj_dim: int = PROJ_DIM,
        queue: int = QUEUE,
        momentum: float = MOMENTUM,
        temperature: float = TEMPERATURE,
        world_batch: int = 1,
    ):
        super().__init__()
        if queue < world_batch:
            raise UsageError(f"the contrastive queue ({queue}) must hold at least one global batch ({world_batch})")
        self.D = D
        self.ema = copy.deepcopy(D).requires_grad_(False)
        self.momentum, self.temperature = momentum, temperature
        self.length = queue // world_batch * world_batch  # whole global batches, as the official queue
        g = torch.Generator().manual_seed(0)
        self.register_buffer("queue_first", F.normalize(torch.randn(queue, proj_dim, generator=g), dim=0))
        self.register_buffer("queue_later", F.normalize(torch.randn(queue, proj_dim, generator=g), dim=0))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        self._ptr: int | None = 0  # queue_ptr on the host (no sync per enqueue); None: read queue_ptr

    def forward(self, x: torch.Tensor, proj_only: bool = False):
        return self.D(x, proj_only=proj_only)

    @torch.no_grad()
    def update_ema(self) -> None:
        for p, q in zip(self.D.parameters(), self.ema.parameters(), strict=True):
            q.lerp_(p.detach(), 1.0 - self.momentum)

    @torch.no_grad()
    def enqueue(self, first: torch.Tensor, later: torch.Tensor) -> None:
        """Add projections (already gathered from every rank) to the queues."""
        n = first.shape[0]
        ptr = self._ptr if self._ptr is not None else int(self.queue_ptr)  # read from the device once
        if ptr + n > self.length:  # never straddle the end: the official length is a multiple of the batch
            ptr = 0
        self.queue_first[ptr : ptr + n] = first.to(self.queue_first)
        self.queue_later[ptr : ptr + n] = later.to(self.queue_later)
        self._ptr = (ptr + n) % self.length
        self.queue_ptr.fill_(self._ptr)

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._ptr = None  # a loaded queue_ptr: read it again

    def loss(
        self, first: torch.Tensor, first2: torch.Tensor, later: torch.Tensor, later2: torch.Tensor
    ) -> torch.Tensor:
        """InfoNCE of the two augmentations of first frames against the first-frame
        queue, plus the same for later frames."""
        q1, q2 = self.queue_first[: self.length].detach(), self.queue_later[: self.length].detach()
        return info_nce(first, first2, q1, self.temperature) + info_nce(later, later2, q2, self.temperature)
