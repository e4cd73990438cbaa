"""Closed-form factorisation of latent semantics (SeFa: Shen and Zhou, "Closed-Form Factorization
of Latent Semantics in GANs", CVPR 2021): the directions of w that change the styles of chosen
layers the most.

A StyleGAN turns each layer's w into that layer's styles with an affine map, s = A w + b. Moving w
by a unit vector n changes the styles by A n, so the directions that change them most are the
eigenvectors of A^T A with the largest eigenvalues. Here A stacks every style affine that reads
the chosen w's (``style_affines`` of the synthesis network: StyleGAN2's modulated convs and
toRGBs, StyleGAN3's synthesis layers and toRGB; not StyleGAN3's w 0, which sets the input
transform), with each row scaled to unit norm as the authors' code does, so that every style
channel counts once whatever the scale of its layer:

    basis = factorize(G, layers=(0, 3))      # the w's 0..3, inclusive
    basis.components                         # [w_dim, w_dim]: unit rows, by eigenvalue (descending)
    basis.eigenvalues                        # [w_dim]
    basis.stdev                              # [w_dim]: w's standard deviation along each row

``stdev`` is measured over seeded samples w = mapping(z), z ~ N(0, I) (as ``pca.fit_pca`` draws
them); ``edits`` moves w by strength x stdev along a direction, so strengths mean the same for
SeFa and PCA directions. This module is the maths; the store's cache of it is
``loaders.sefa_bases.sefa_for``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .errors import UsageError

SAMPLES = 10_000  # w samples of the stdev along each direction (about 0.7% error)


@dataclass
class SeFaBasis:
    components: torch.Tensor  # [w_dim, w_dim], unit rows, sorted by eigenvalue (descending)
    eigenvalues: torch.Tensor  # [w_dim], of A^T A (A's rows of unit norm)
    stdev: torch.Tensor  # [w_dim]: w's standard deviation along each direction
    layers: tuple[int, int]  # the w's factorised, first and last (inclusive)
    info: dict = field(default_factory=dict)  # samples, seed, style rows

    def __post_init__(self):
        d = self.components.shape[-1]
        if self.components.shape != (d, d) or self.eigenvalues.shape != (d,) or self.stdev.shape != (d,):
            raise UsageError(
                f"a SeFa basis is components [d, d], eigenvalues [d] and stdev [d]; got "
                f"{list(self.components.shape)}, {list(self.eigenvalues.shape)}, {list(self.stdev.shape)}"
            )

    @property
    def w_dim(self) -> int:
        return self.components.shape[1]


def check_layers(layers, num_ws: int) -> tuple[int, int]:
    """``layers`` (first, last) as ints with 0 <= first <= last < ``num_ws``; else a UsageError."""
    try:
        first, last = (int(v) for v in layers)
        if any(isinstance(v, bool) or int(v) != v for v in layers):
            raise TypeError
    except (TypeError, ValueError):
        raise UsageError(f"layers must be two whole numbers (first, last), got {layers!r}") from None
    if not 0 <= first <= last < num_ws:
        raise UsageError(f"layers {first}-{last} are out of range: the generator has {num_ws} w's (0-{num_ws - 1})")
    return first, last


def style_matrix(G, layers: tuple[int, int]) -> torch.Tensor:
    """A: the weights of every style affine that reads the w's ``layers`` (first, last), stacked,
    each row scaled to unit norm (rows of zeros stay zero): [rows, w_dim], float64, CPU."""
    affines = getattr(G.synthesis, "style_affines", None)
    if affines is None:
        raise UsageError(
            f"SeFa factorises style layers, which StyleGAN2 and StyleGAN3 have; the {G.family} generator has none"
        )
    first, last = check_layers(layers, G.num_ws)
    rows = [fc.weight.detach().double().cpu() * fc.weight_gain for ws in affines()[first : last + 1] for fc in ws]
    if not rows:
        raise UsageError(
            f"the w's {first}-{last} of this {G.family} generator modulate no style layer "
            "(w 0 of a StyleGAN3 sets its input transform): include later layers"
        )
    A = torch.cat(rows)
    norms = A.norm(dim=1, keepdim=True)
    return A / torch.where(norms > 0, norms, torch.ones_like(norms))


def factorize(G, layers: tuple[int, int], samples: int = SAMPLES, seed: int = 0, batch: int = 4096) -> SeFaBasis:
    """The SeFa directions of the w's ``layers`` (first, last; inclusive) of G: the eigenvectors of
    A^T A (``style_matrix``), sorted by eigenvalue, each signed so that its largest-magnitude entry
    is positive, with the standard deviation of w along each over ``samples`` seeded samples."""
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
        raise UsageError(f"SeFa needs at least 2 samples of w for its stdev, got {samples!r}")
    A = style_matrix(G, layers)
    evals, evecs = torch.linalg.eigh(A.t() @ A)  # ascending
    evals, comps = evals.flip(0).clamp(min=0), evecs.flip(1).t().contiguous()
    k = torch.arange(comps.shape[0])
    comps = comps * torch.sign(comps[k, comps.abs().argmax(dim=1)])[:, None]
    stdev = (_covariance(G, samples, seed, batch) @ comps.t() * comps.t()).sum(0).clamp(min=0).sqrt()
    info = {"samples": samples, "seed": seed, "style_rows": int(A.shape[0])}
    return SeFaBasis(comps.float(), evals.float(), stdev.float(), check_layers(layers, G.num_ws), info)


def _covariance(G, samples: int, seed: int, batch: int) -> torch.Tensor:
    """The covariance of w = G.mapping(z) over ``samples`` z drawn on the CPU from ``seed``: [w_dim, w_dim] float64."""
    device = next(G.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    ws = []
    with torch.no_grad():
        for done in range(0, samples, batch):
            z = torch.randn(min(batch, samples - done), G.z_dim, generator=gen)
            ws.append(G.mapping(z.to(device)).double().cpu())
    w = torch.cat(ws)
    w = w - w.mean(0)
    return w.t() @ w / (samples - 1)
