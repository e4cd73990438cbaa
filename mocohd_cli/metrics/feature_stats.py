"""Streaming mean and covariance of feature vectors, in float64.

    stats = FeatureStats(max_items=2048)
    for batch in features:                  # [N, D] tensors or arrays, any float dtype
        stats.update(batch)
    mu, sigma = stats.mean, stats.covariance(ddof=0)

Each batch is reduced to (count, mean, centred sum of outer products M2) in
float64 and merged with Chan, Golub and LeVeque's pairwise update:

    delta = mean_b - mean_a,  n = n_a + n_b
    mean  = mean_a + delta * n_b / n
    M2    = M2_a + M2_b + outer(delta, delta) * n_a * n_b / n

Centring each batch before its outer products avoids the cancellation of the
raw-moment form (sum x x^T / n - mean mean^T) that StyleGAN-V's
``metric_utils.FeatureStats`` uses, which loses digits when features sit far
from 0; the two agree to rounding otherwise. ``merge`` is the same update,
so statistics gathered from many processes equal one process's to rounding.

Which covariance: the two reference codes differ.
- StyleGAN-V (``metric_utils.FeatureStats.get_mean_cov``, used for its FVD
  and FID): ``raw_cov / n - outer(mean, mean)``, the biased estimate, M2 / n
  (``covariance(ddof=0)``).
- pytorch-fid (``calculate_activation_statistics``): ``np.cov(act,
  rowvar=False)``, the unbiased estimate, M2 / (n - 1) (``covariance(ddof=1)``,
  and the ``cov`` property, numpy's default).
The protocol table (``mocohd_cli.metrics.protocol.PROTOCOLS``) says which
each metric uses.

``max_items``: like StyleGAN-V's FeatureStats, rows past the limit are
dropped (a batch that crosses it is cut), and ``is_full`` says when to stop.
"""

from __future__ import annotations

import torch

from ..errors import MocohdError, UsageError


class FeatureStats:
    """Count, mean and centred second moment of a stream of [N, D] feature batches (float64, CPU)."""

    def __init__(self, max_items: int | None = None):
        if max_items is not None and (not isinstance(max_items, int) or max_items < 1):
            raise UsageError(f"FeatureStats: max_items must be a positive integer or None, got {max_items!r}")
        self.max_items = max_items
        self.count = 0
        self._mean: torch.Tensor | None = None  # [D] float64
        self._m2: torch.Tensor | None = None  # [D, D] float64

    # -- accumulating -------------------------------------------------------------------------

    @property
    def dim(self) -> int | None:
        return None if self._mean is None else int(self._mean.shape[0])

    def is_full(self) -> bool:
        return self.max_items is not None and self.count >= self.max_items

    def update(self, features) -> int:
        """Add a batch of feature rows [N, D]; returns how many were taken (fewer past ``max_items``)."""
        x = torch.as_tensor(features) if not isinstance(features, torch.Tensor) else features.detach()
        if x.ndim != 2:
            raise UsageError(f"FeatureStats.update: features must be [N, D], got {list(x.shape)}")
        if self.dim is not None and x.shape[1] != self.dim:
            raise UsageError(f"FeatureStats.update: features have {x.shape[1]} dimensions, earlier ones {self.dim}")
        if self.max_items is not None:
            x = x[: max(0, self.max_items - self.count)]
        n = int(x.shape[0])
        if n == 0:
            return 0
        x = x.cpu().to(torch.float64)  # float64 on the host (MPS has none)
        if not torch.isfinite(x).all():
            raise MocohdError("FeatureStats.update: the features hold NaN or infinite values")
        mean = x.mean(0)
        centred = x - mean
        self._combine(n, mean, centred.T @ centred)
        return n

    def merge(self, other: FeatureStats) -> FeatureStats:
        """Add another accumulator's items to this one (e.g. gathered from another process); returns self.
        ``max_items`` of this one still applies: an ``other`` that would pass it is refused."""
        if not isinstance(other, FeatureStats):
            raise UsageError(f"FeatureStats.merge: expected FeatureStats, got {type(other).__name__}")
        if other.count == 0:
            return self
        if self.dim is not None and other.dim != self.dim:
            raise UsageError(f"FeatureStats.merge: {other.dim} dimensions against {self.dim}")
        if self.max_items is not None and self.count + other.count > self.max_items:
            raise UsageError(
                f"FeatureStats.merge: {self.count} + {other.count} items exceed max_items {self.max_items}"
            )
        self._combine(other.count, other._mean, other._m2)
        return self

    def _combine(self, n_b: int, mean_b: torch.Tensor, m2_b: torch.Tensor) -> None:
        if self.count == 0:
            self.count, self._mean, self._m2 = n_b, mean_b.clone(), m2_b.clone()
            return
        n_a, n = self.count, self.count + n_b
        delta = mean_b - self._mean
        self._mean = self._mean + delta * (n_b / n)
        self._m2 = self._m2 + m2_b + torch.outer(delta, delta) * (n_a * n_b / n)
        self.count = n

    # -- results ------------------------------------------------------------------------------

    def _need(self, at_least: int) -> None:
        if self.count < at_least:
            raise MocohdError(
                f"feature statistics need at least {at_least} item{'s' if at_least != 1 else ''}, have {self.count}"
            )

    @property
    def mean(self) -> torch.Tensor:
        """[D] float64."""
        self._need(1)
        return self._mean.clone()

    def covariance(self, ddof: int = 1) -> torch.Tensor:
        """[D, D] float64: M2 / (count - ddof). ddof=1: numpy.cov / pytorch-fid; ddof=0: StyleGAN-V."""
        if ddof not in (0, 1):
            raise UsageError(f"FeatureStats.covariance: ddof must be 0 or 1, got {ddof!r}")
        self._need(ddof + 1)
        return self._m2 / (self.count - ddof)

    @property
    def cov(self) -> torch.Tensor:
        """The unbiased covariance, as ``numpy.cov(features, rowvar=False)``."""
        return self.covariance(1)

    # -- saving -------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """Plain values for a cache file: ``count`` and ``max_items`` (ints, -1 for none) and, when
        anything was added, ``mean`` [D] and ``m2`` [D, D] float64 tensors."""
        out = {"count": self.count, "max_items": -1 if self.max_items is None else self.max_items}
        if self.count:
            out["mean"], out["m2"] = self._mean.clone(), self._m2.clone()
        return out

    @classmethod
    def from_state_dict(cls, state: dict) -> FeatureStats:
        try:
            count, max_items = int(state["count"]), int(state["max_items"])
            stats = cls(None if max_items < 0 else max_items)
            if count:
                mean = torch.as_tensor(state["mean"], dtype=torch.float64)
                m2 = torch.as_tensor(state["m2"], dtype=torch.float64)
                d = mean.shape[0] if mean.ndim == 1 else -1
                if d < 1 or m2.shape != (d, d) or count < 0:
                    raise ValueError(f"mean {list(mean.shape)}, m2 {list(m2.shape)}, count {count}")
                if not (torch.isfinite(mean).all() and torch.isfinite(m2).all()):
                    raise ValueError("non-finite values")
                stats.count, stats._mean, stats._m2 = count, mean.clone(), m2.clone()
        except (KeyError, TypeError, ValueError, UsageError) as e:
            raise MocohdError(f"not feature statistics: {e}") from None
        return stats
