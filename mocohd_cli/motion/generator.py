"""MoCoGAN-HD's motion generator: an LSTM that walks w through the image
generator's principal directions (MoCoGAN-HD, ICLR 2021).

    h_1, c_1 = LSTM_enc(w_1)                                  (zero initial state)
    h_t, c_t = LSTM_dec(eps_t, (h_{t-1}, c_{t-1})),  eps_t ~ N(0, I),  t = 2..n
    r_t      = tanh(h_t W + b)                                [n_pca]
    w_t      = w_{t-1} + lambda * r_t (V * s)                 V: [n_pca, w_dim] directions, s: stdev
    e_rec_t  = fc2(relu(fc1([h_t, c_t])))                     reconstructs eps_t (diversity loss)

With ``oscillators`` K > 0 (our extension; 0 is the authors' model) a bank of
K oscillators adds independent periodic movements to the walk:

    o_t = sum_k sin(2 pi t / P_k + phi_k) u_k                [n_pca], t = 0..n-1
    w_t = w_{t-1} + lambda * r_t (V * s) + (o_t - o_{t-1}) (V * s)

Each oscillator has a learned period P_k (initialised log-spaced over
[osc_min_period, osc_max_period] frames) and a learned movement u_k in PCA
coordinates (stdevs). With ``osc_basis`` "free" each u_k is a free vector;
with "orthonormal" u_k = a_k q_k, a learned size a_k along the k-th row of a
learned orthonormal basis Q (K <= n_pca): no two oscillators move the same
direction, so independent phases are independent directions (see
docs/research/motion-recovery.md, "What the real side carries"). Its phase phi_k is drawn per video, uniform on
[0, 2 pi): the normal CDF of the first step's noise eps_1[k], so the noise
the callers already draw decides it and a seed gives the same video. This is
the spectral picture of stationary motion (a sum of sinusoids with
independent random phases): movements at different periods stay independent
of each other, which one recurrent oscillator cannot represent (see
``benchmarks/RESULTS.md``, "Several movements at once").

The PCA directions travel with the model (buffers, with the mean of w they
were fitted around), so a motion file is self-contained; ``retarget`` swaps
in another generator's basis for cross-domain synthesis (direction k ->
direction k, scaled by the target's stdev), whatever its w size: for another
w size the first latent is carried into the model's own space through PCA
coordinates, since the encoder LSTM reads it. Tensor names follow the
official state dict (``enc_cell``, ``cell``, ``w``, ``b``, ``fc1``, ``fc2``).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import init

from .. import ops
from ..dict_config import DictConfig, check_int, check_real
from ..errors import UsageError

FAMILY = "mocogan-hd-lstm"  # the family of a motion model file (kind "motion")


@dataclass
class MotionConfig(DictConfig):
    w_dim: int = 512  # the image generator's w size (the official latent_dimension)
    noise_dim: int = 512  # size of eps (the official model uses latent_dimension)
    h_dim: int = 384
    n_pca: int = 384
    w_residual: float = 0.2  # lambda, the step weight
    oscillators: int = 0  # K, the oscillator bank's size (0: the authors' model)
    osc_min_period: float = 3.0  # the bank's initial periods, in frames, log-spaced over [min, max]
    osc_max_period: float = 32.0
    osc_basis: str = "free"  # the bank's movements: "free" vectors, or sizes along an "orthonormal" basis

    def __post_init__(self):  # UsageError for a value out of range
        for name in ("w_dim", "noise_dim", "h_dim"):
            check_int(getattr(self, name), name)
        check_int(self.n_pca, "n_pca", hi=self.w_dim)
        check_real(self.w_residual, "w_residual")
        check_int(self.oscillators, "oscillators", lo=0, hi=self.noise_dim)  # phases come from eps_1[:K]
        check_real(self.osc_min_period, "osc_min_period", lo=2.0)
        check_real(self.osc_max_period, "osc_max_period", lo=self.osc_min_period, hi=1e6)
        if self.osc_basis not in OSC_BASES:
            raise UsageError(f"osc_basis must be one of {', '.join(OSC_BASES)}, got {self.osc_basis!r}")
        if self.osc_basis == "orthonormal" and self.oscillators > self.n_pca:
            raise UsageError(
                f"an orthonormal bank moves one direction per oscillator: oscillators ({self.oscillators}) "
                f"must be at most n_pca ({self.n_pca})"
            )

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """Name -> shape of every tensor in the motion generator's state dict (nothing is allocated)."""
        h4, h, n = 4 * self.h_dim, self.h_dim, self.noise_dim
        out: dict[str, tuple[int, ...]] = {}
        for cell, inp in (("enc_cell", self.w_dim), ("cell", n)):
            out.update(
                {
                    f"{cell}.weight_ih": (h4, inp),
                    f"{cell}.weight_hh": (h4, h),
                    f"{cell}.bias_ih": (h4,),
                    f"{cell}.bias_hh": (h4,),
                }
            )
        out.update(
            {
                "w": (h, self.n_pca),
                "b": (self.n_pca,),
                "fc1.weight": (n, 2 * h),
                "fc1.bias": (n,),
                "fc2.weight": (n, n),
                "fc2.bias": (n,),
                "pca_components": (self.n_pca, self.w_dim),
                "pca_stdev": (self.n_pca,),
                "pca_mean": (self.w_dim,),
            }
        )
        if self.oscillators:
            k = self.oscillators
            out["osc_log_period"] = (k,)
            if self.osc_basis == "orthonormal":
                out.update({"osc_size": (k,), "osc_frame": (k, self.n_pca)})
            else:
                out["osc_move"] = (k, self.n_pca)
        return out


def orthonormal_rows(frame: torch.Tensor) -> torch.Tensor:
    """The rows of ``frame`` [K, n] (K <= n, full rank) made orthonormal in order (Gram-Schmidt:
    row k keeps what of itself the rows before it leave free), differentiable; computed as a QR
    factorisation whose R has a positive diagonal, the factor Gram-Schmidt gives, which moves
    smoothly with ``frame``. On MPS (no QR there) it is computed on the CPU."""
    if frame.device.type == "mps":  # the device itself, not a stand-in's kind
        return orthonormal_rows(frame.cpu()).to(frame.device)
    q, r = torch.linalg.qr(frame.T)  # [n, K], [K, K]
    sign = torch.where(torch.diagonal(r) < 0, -1.0, 1.0).to(q)
    return (q * sign).T


def bank_movements(tensors: dict) -> torch.Tensor:
    """The oscillator bank's movements u_k [K, n_pca] from a motion model's tensors (a state dict or a
    file's), whatever its basis: ``osc_move`` itself, or the sizes along the orthonormal rows."""
    if "osc_move" in tensors:
        return tensors["osc_move"]
    return tensors["osc_size"][:, None] * orthonormal_rows(tensors["osc_frame"])


def oscillator_bank(tensors: dict) -> list[tuple[float, float]]:
    """A motion model's oscillator bank from its tensors (a state dict or a file's): (period in
    frames, size of its movement u_k in stdevs) per oscillator, largest first; [] for the authors' model."""
    if "osc_log_period" not in tensors:
        return []
    periods = tensors["osc_log_period"].detach().double().exp().tolist()
    sizes = bank_movements({k: v.detach().double() for k, v in tensors.items() if k.startswith("osc_")})
    sizes = sizes.norm(dim=1).tolist()
    return sorted(zip(periods, sizes, strict=True), key=lambda ps: -ps[1])


OSC_BASES = ("free", "orthonormal")
OPTIONAL = ("pca_mean",)  # state entries files written before they existed lack (then: unknown, zeros)


@dataclass
class MotionState:
    """Where an unrolled trajectory stands: LSTM state, the last w and, with oscillators,
    the frame index, the videos' phases and the last oscillator offset (None before the
    first step has drawn the phases)."""

    h: torch.Tensor  # [B, h_dim]
    c: torch.Tensor  # [B, h_dim]
    w: torch.Tensor  # [B, w_dim]
    t: int = 0  # frames after the first
    phase: torch.Tensor | None = None  # [B, K]
    osc: torch.Tensor | None = None  # [B, n_pca], o_t of the last frame


class MotionGenerator(nn.Module):
    def __init__(
        self,
        cfg: MotionConfig,
        components: torch.Tensor | None = None,
        stdev: torch.Tensor | None = None,
        mean: torch.Tensor | None = None,
    ):
        super().__init__()
        if cfg.n_pca > cfg.w_dim:
            raise UsageError(f"n_pca ({cfg.n_pca}) cannot exceed w_dim ({cfg.w_dim})")
        self.cfg = cfg
        self.image: dict[str, str] = {}  # the image generator it was trained with (image_name, image_sha256), if known
        self.source: dict = {}  # provenance, as its file records it
        self.enc_cell = nn.LSTMCell(cfg.w_dim, cfg.h_dim)
        self.cell = nn.LSTMCell(cfg.noise_dim, cfg.h_dim)
        self.w = nn.Parameter(torch.empty(cfg.h_dim, cfg.n_pca))
        self.b = nn.Parameter(torch.empty(cfg.n_pca))
        self.fc1 = nn.Linear(2 * cfg.h_dim, cfg.noise_dim)
        self.fc2 = nn.Linear(cfg.noise_dim, cfg.noise_dim)
        if cfg.oscillators:
            self.osc_log_period = nn.Parameter(torch.empty(cfg.oscillators))
            if cfg.osc_basis == "orthonormal":
                self.osc_size = nn.Parameter(torch.empty(cfg.oscillators))
                self.osc_frame = nn.Parameter(torch.empty(cfg.oscillators, cfg.n_pca))
            else:
                self.osc_move = nn.Parameter(torch.empty(cfg.oscillators, cfg.n_pca))
        self.register_buffer("pca_components", torch.zeros(cfg.n_pca, cfg.w_dim))
        self.register_buffer("pca_stdev", torch.zeros(cfg.n_pca))
        self.register_buffer("pca_mean", torch.zeros(cfg.w_dim))  # the mean of w the basis was fitted around
        self.has_mean = False  # whether pca_mean is known (files before it existed: not)
        # Set by ``retarget`` to another w size: the encoder's input x = w1 @ input_map + input_offset
        self.input_map: torch.Tensor | None = None
        self.input_offset: torch.Tensor | None = None
        self.retargeted: dict = {}  # what ``retarget`` did (for messages)
        self.reset_parameters()
        if components is not None:
            self.set_basis(components, stdev, mean)

    def reset_parameters(self) -> None:
        """The official initialisation: orthogonal LSTM gate blocks and linear
        weights, zero LSTM biases, W ~ N(0, 0.02), b = 0 (linear biases keep
        PyTorch's default)."""
        for cell in (self.enc_cell, self.cell):
            for name, p in cell.named_parameters():
                if name.startswith("weight"):
                    gate = p.shape[0] // 4
                    for i in range(4):
                        init.orthogonal_(p.data[i * gate : (i + 1) * gate])
                else:
                    p.data.zero_()
        for fc in (self.fc1, self.fc2):
            init.orthogonal_(fc.weight)
        init.normal_(self.w, std=0.02)
        init.zeros_(self.b)
        if self.cfg.oscillators:
            lo, hi = math.log(self.cfg.osc_min_period), math.log(self.cfg.osc_max_period)
            self.osc_log_period.data.copy_(torch.linspace(lo, hi, self.cfg.oscillators))
            if self.cfg.osc_basis == "orthonormal":  # random directions, each as large as a free one's
                init.normal_(self.osc_frame, std=self.cfg.n_pca**-0.5)
                init.constant_(self.osc_size, 0.02 * math.sqrt(self.cfg.n_pca))
            else:
                init.normal_(self.osc_move, std=0.02)

    def set_basis(self, components: torch.Tensor, stdev: torch.Tensor, mean: torch.Tensor | None = None) -> None:
        """Use the first n_pca rows of ``components`` [k, w_dim] and ``stdev`` [k]; ``mean`` [w_dim]:
        the mean of w they were fitted around (kept with the model; None: unknown)."""
        n, d = self.cfg.n_pca, self.cfg.w_dim
        if components.ndim != 2 or components.shape[1] != d:
            raise UsageError(f"PCA basis has w size {components.shape[-1]}, the motion model needs {d}")
        if components.shape[0] < n or stdev.shape[0] < n:
            raise UsageError(
                f"PCA basis has {min(components.shape[0], stdev.shape[0])} directions, the motion model needs {n}"
            )
        self.pca_components.copy_(components[:n])
        self.pca_stdev.copy_(stdev[:n])
        if mean is not None:
            if mean.shape != (d,):
                raise UsageError(f"PCA mean has shape {list(mean.shape)}, the motion model needs [{d}]")
            self.pca_mean.copy_(mean)
            self.has_mean = True

    def retarget(
        self, components: torch.Tensor, stdev: torch.Tensor, mean: torch.Tensor | None = None
    ) -> MotionGenerator:
        """A copy that moves along another generator's principal directions: step direction k is the
        target's direction k, scaled by its stdev. Where the target has fewer directions than the
        model's n_pca, the model's last ones have none (they are dropped); extra target directions
        are unused. ``retargeted`` says what was done.

        Same w size: only the basis changes; the encoder reads the target's first latent as it is
        (the frames of earlier versions, exactly). Another w size: the first latent is carried into
        the model's own space through PCA coordinates, a_k = (w1 - mean_t) . v_k / s_k for the
        directions both bases have, then x = mean_m + sum_k a_k s'_k v'_k (the model's own basis
        and mean, ``pca_mean``; zeros when the file does not know it), and the encoder reads x. The
        copy cannot be saved (its encoder still reads the model's own w size)."""
        n, d_own = self.cfg.n_pca, self.pca_components.shape[1]
        if components.ndim != 2 or stdev.ndim != 1 or components.shape[0] != stdev.shape[0] or components.shape[0] < 1:
            raise UsageError(
                f"a PCA basis is components [k, w_dim] and stdev [k], got {list(components.shape)} "
                f"and {list(stdev.shape)}"
            )
        k, d = components.shape
        m = min(n, k)
        comp = components.to(self.pca_components)
        sd = stdev.to(self.pca_stdev)
        other = copy.deepcopy(self)
        other.cfg = copy.copy(self.cfg)
        other.cfg.w_dim = d  # the w it moves in now (not validated: n_pca may exceed a smaller target w size)
        step_comp = torch.zeros(n, d, dtype=comp.dtype, device=comp.device)
        step_sd = torch.zeros(n, dtype=sd.dtype, device=sd.device)
        step_comp[:m], step_sd[:m] = comp[:m], sd[:m]
        other.pca_components, other.pca_stdev = step_comp, step_sd  # buffers of the new shape
        target_mean = torch.zeros(d, dtype=comp.dtype, device=comp.device) if mean is None else mean.to(comp)
        other.pca_mean, other.has_mean = target_mean, mean is not None
        if d != d_own:
            scale = self.pca_stdev[:m] / sd[:m].clamp_min(1e-12)  # [m]
            other.input_map = comp[:m].T @ (scale[:, None] * self.pca_components[:m])  # [d, d_own]
            other.input_offset = self.pca_mean - target_mean @ other.input_map  # [d_own]
        else:
            other.input_map = other.input_offset = None
        other.retargeted = {
            "directions": m,
            "n_pca": n,
            "target_directions": k,
            "w_dim": d,
            "own_w_dim": d_own,
            "own_mean": bool(self.has_mean),
        }
        return other

    # ------------------------------------------------------------------ unrolling

    def start(self, w1: torch.Tensor) -> MotionState:  # w1: [B, w_dim]
        x = w1 if self.input_map is None else w1 @ self.input_map.to(w1) + self.input_offset.to(w1)
        h, c = self.enc_cell(x)
        return MotionState(h, c, w1)

    def draw_eps(self, batch: int, steps: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """eps for ``steps`` steps, [batch, steps, noise_dim]; drawn step by step on
        the CPU, so a seed gives the same noise whatever the device or chunking."""
        eps = [torch.randn(batch, self.cfg.noise_dim, generator=generator) for _ in range(steps)]
        eps = torch.stack(eps, dim=1) if eps else torch.zeros(batch, 0, self.cfg.noise_dim)
        return eps.to(self.pca_components.device)

    def unroll(self, state: MotionState, steps: int, eps: torch.Tensor | None = None, generator=None):
        """Advance ``steps`` frames. Returns (ws [B, steps, w_dim], eps, hc [B, steps, 2 h_dim], new state)."""
        batch = state.w.shape[0]
        if eps is None:
            eps = self.draw_eps(batch, steps, generator)
        if eps.shape != (batch, steps, self.cfg.noise_dim):
            raise UsageError(f"eps must be [{batch}, {steps}, {self.cfg.noise_dim}], got {list(eps.shape)}")
        step_basis = self.pca_components * self.pca_stdev[:, None]  # [n_pca, w_dim]
        h, c, w = state.h, state.c, state.w
        phase, osc = state.phase, state.osc
        move = self.movements() if self.cfg.oscillators and steps else None
        if move is not None and phase is None:  # the first step: the videos' phases, o_0
            phase = 2 * math.pi * torch.special.ndtr(eps[:, 0, : self.cfg.oscillators])
            osc = self.oscillation(state.t, phase, move)
        ws, hcs = [], []
        for t in range(steps):
            h, c = self.cell(eps[:, t], (h, c))
            r = torch.tanh(h @ self.w + self.b)
            w = w + self.cfg.w_residual * (r @ step_basis)  # the authors' step, bit for bit
            if phase is not None:
                new = self.oscillation(state.t + t + 1, phase, move)
                w, osc = w + (new - osc) @ step_basis, new
            ws.append(w)
            hcs.append(torch.cat([h, c], dim=1))
        empty = state.w.new_zeros(batch, 0, self.cfg.w_dim)
        ws_t = torch.stack(ws, dim=1) if ws else empty
        hc_t = torch.stack(hcs, dim=1) if hcs else state.w.new_zeros(batch, 0, 2 * self.cfg.h_dim)
        return ws_t, eps, hc_t, MotionState(h, c, w, state.t + steps, phase, osc)

    def movements(self) -> torch.Tensor:
        """The oscillators' movements u_k [K, n_pca], in stdevs, whatever the bank's basis."""
        return bank_movements(self._parameters)

    def oscillation(self, t: int, phase: torch.Tensor, move: torch.Tensor | None = None) -> torch.Tensor:
        """The oscillator bank's offset at frame ``t`` in PCA coordinates [B, n_pca]:
        sum_k sin(2 pi t / P_k + phase_k) u_k (the angle in float64, so long videos keep their phase;
        float32 on MPS, which has no float64). ``move``: ``movements()``, when the caller has it."""
        move = self.movements() if move is None else move
        dt = torch.float32 if ops.device_kind(phase) == "mps" else torch.float64
        angle = (2 * math.pi * t) * torch.exp(-self.osc_log_period.to(dt)) + phase.to(dt)  # [B, K]
        return torch.sin(angle).to(move.dtype) @ move

    def _oscillator_step_energy(self) -> torch.Tensor:
        """Each oscillator's expected step energy per frame, in stdev^2 [K]: it moves
        |sin(a + 2 pi / P) - sin(a)|^2 = 2 sin^2(pi / P) |u|^2 per frame on average over its
        phase, the periods taken as constants."""
        per_frame = 2 * torch.sin(math.pi * torch.exp(-self.osc_log_period.detach())).square()
        return per_frame * self.movements().square().sum(dim=1)

    def bank_step_energy(self) -> torch.Tensor:
        """The bank's expected step energy per frame, in stdev^2 (a scalar). The periods enter as
        constants, so a penalty on it shrinks movements without slowing them: the prior of
        training's ``w_bank_energy`` (0 without a bank)."""
        if not self.cfg.oscillators:
            return self.fc2.weight.new_zeros(())
        return self._oscillator_step_energy().sum()

    def bank_spread(self) -> torch.Tensor:
        """How many PCA directions each oscillator moves, in [0, 1] (a scalar): per oscillator
        (|u|_1 / |u|_2 - 1) / (sqrt(n_pca) - 1), 0 for one direction and 1 for all alike,
        averaged with weights its share of the bank's step energy (taken as constants). The
        ratio does not change with |u|, so a penalty on it turns movements toward few
        directions without shrinking them: the prior of training's ``w_bank_spread`` (0 without
        a bank). Why: pooled over videos, what a mixture of directions does to the pixels can
        rebuild what the true ones do (benchmarks/RESULTS.md); the sparser answer is the one
        that moves along the generator's principal directions, as in GANSpace."""
        if not self.cfg.oscillators or self.cfg.n_pca < 2:
            return self.fc2.weight.new_zeros(())
        u = self.movements()
        ratio = u.abs().sum(dim=1) / u.norm(dim=1).clamp_min(1e-12)
        with torch.no_grad():
            energy = self._oscillator_step_energy()
            weight = energy / energy.sum().clamp_min(1e-30)
        return (weight * (ratio - 1)).sum() / (math.sqrt(self.cfg.n_pca) - 1)

    def set_bank(self, periods: torch.Tensor, directions: torch.Tensor, sizes: torch.Tensor) -> None:
        """Set the oscillator bank: periods [K] in frames, directions [K, n_pca] (orthonormal rows, as
        ``stats.rhythms`` finds them) and sizes [K] in stdevs (the phases stay drawn per video). A period
        under 2 frames (beyond the fastest a frame rate shows) is set to 2."""
        k, n = self.cfg.oscillators, self.cfg.n_pca
        if not k:
            raise UsageError("this motion model has no oscillator bank")
        if periods.shape != (k,) or directions.shape != (k, n) or sizes.shape != (k,):
            raise UsageError(
                f"a bank of {k} oscillators over {n} directions needs periods [{k}], directions [{k}, {n}] and "
                f"sizes [{k}], got {list(periods.shape)}, {list(directions.shape)} and {list(sizes.shape)}"
            )
        with torch.no_grad():
            self.osc_log_period.copy_(periods.double().clamp(min=2.0).log())
            if self.cfg.osc_basis == "orthonormal":
                self.osc_frame.copy_(directions)
                self.osc_size.copy_(sizes)
            else:
                self.osc_move.copy_(sizes.double()[:, None] * directions.double())

    def free_bank(self) -> MotionGenerator:
        """A copy whose bank holds the same movements as free vectors (``osc_move``), to edit them;
        the model itself when its bank is free or absent."""
        if self.cfg.osc_basis != "orthonormal":
            return self
        other = copy.deepcopy(self)
        other.cfg = copy.copy(self.cfg)
        other.cfg.osc_basis = "free"
        move = self.movements().detach().clone()
        del other.osc_size, other.osc_frame
        other.osc_move = nn.Parameter(move, requires_grad=self.osc_frame.requires_grad)
        return other

    def bank(self) -> list[tuple[float, float]]:
        """The oscillator bank as (period in frames, size of its movement in stdevs), largest first."""
        return oscillator_bank(self.state_dict())

    def reconstruct_eps(self, hc: torch.Tensor) -> torch.Tensor:  # [..., 2 h_dim] -> [..., noise_dim]
        return self.fc2(torch.relu(self.fc1(hc)))

    def forward(
        self,
        w1: torch.Tensor,
        n_frames: int,
        eps: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        return_eps: bool = False,
    ):
        """Trajectory of ``n_frames`` w's starting at ``w1`` [B, w_dim] -> [B, n_frames, w_dim].

        With ``return_eps`` also returns eps [B, n-1, noise_dim] and its
        reconstruction from the LSTM states (the mutual-information loss).
        """
        if n_frames < 1:
            raise UsageError("n_frames must be >= 1")
        ws, eps, hc, _ = self.unroll(self.start(w1), n_frames - 1, eps, generator)
        ws = torch.cat([w1.unsqueeze(1), ws], dim=1)
        if return_eps:
            return ws, eps, self.reconstruct_eps(hc)
        return ws
