"""Does `mocohd train` learn motion? Recover a known latent motion.

"Real" videos are rendered by a small frozen StyleGAN2 along known latent
trajectories: sinusoids along a few chosen PCA directions of that same
generator (random phases, an amplitude in units of each direction's stdev),
from random starting latents. A motion generator is then trained in-domain on
them (the official losses and schedule, smaller networks), and at every
checkpoint its motion is measured along the true directions
(``mocohd_cli.motion.stats``, 256 trajectories of one clip length):

  energy     the share of the learned per-step displacement energy in the
             span of the true directions (an untrained model puts about its
             variance-weighted share of n_true / n_pca there);
  freq       the dominant frequency of the learned motion along all of them
             together (Hann window, zero-padded FFT, mean power);
  shares     each true direction's share of the energy inside that span,
             against the real clips' (measured the same way);
  periods    each direction's own dominant period, against the real clips';
  coh        the largest phase coherence between two directions (the real
             clips' movements are independent: about 0).

With an oscillator bank (``--train oscillators=K``) each checkpoint also
prints the bank's largest oscillators and the motion of its two parts: the
LSTM's steps alone and the bank alone (which part moves what, and which
puts motion off the true directions).

With ``--ema-half-life H [H ...]`` each checkpoint also measures exponential
moving averages of the motion model's weights over the checkpoints (as a
GAN's G_ema): does averaging remove motion that a single checkpoint has?
With ``--train motion_ema=H`` the run exports a moving average of the
motion model's weights, updated at every step: each checkpoint measures it
(the rows) and the model trained, as it stands (``trained`` in the JSON).

``--identifiability`` only measures, to first order, how well movement off the
true directions (in phase with them) can make the frames move as the true
movements do: pooled over videos, given the first frame, and video by video.
``--rotate DEGREES`` turns the true movements off the PCA axes.

``--term-sensitivity [BATCH ...]`` only measures what the cross-spectrum term
(``--w-cross-spectrum``) sees: clips of the case against clips of the same
kind, with added off-span movements, with the rhythms off, and (``--bank
checkpoint.pt``) made by a trained bank and by that bank cut to the true
directions; ``--content H`` compares them given the first frame.

Cases (``--case``):
  single  one movement: one period (8 frames) along directions 1, 3 and 5 of 16.
          Targets: energy >= 60 % and freq within 25 % of the true one,
          within 20 CPU minutes.
  multi   three independent movements, directions 1, 3 and 5 with
          periods 5, 8 and 12 frames and amplitudes 0.4, 0.8 and 1.3 stdev
          (about equal shares of the real energy). Targets: every share
          within +-0.15 of the real one, every period within 20 %, energy
          >= 60 %, within the same budget.

    python benchmarks/bench_motion_recovery.py                      # ~20 min on 2 cores
    python benchmarks/bench_motion_recovery.py --case multi         # ~20 min
    python benchmarks/bench_motion_recovery.py --minutes 3          # a quick look
    python benchmarks/bench_motion_recovery.py --case multi --steps 600 --train g_steps=1   # an ablation
    python benchmarks/bench_motion_recovery.py --term-sensitivity 8 32 --bank RUN/checkpoint.pt  # ~4 min
    python benchmarks/bench_motion_recovery.py --identifiability --videos 128   # ~1 min
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_generator(resolution: int, w_dim: int, seed: int):
    from mocohd_cli.generators import StyleGAN2Config, StyleGAN2Generator

    cfg = StyleGAN2Config(
        resolution=resolution, z_dim=w_dim, w_dim=w_dim, mapping_layers=4, channel_base=1024, channel_max=32
    )
    torch.manual_seed(seed)
    G = StyleGAN2Generator(cfg).eval().requires_grad_(False)
    # A randomly initialised generator paints far outside [-1, 1] (a third of its pixels); real
    # frames are clipped by 8-bit encoding, fake ones are not, so a discriminator could tell them
    # apart by clipping alone. Scale every toRGB layer so images stay in range, as a trained
    # generator's do: the image is the sum of the toRGB outputs, so it scales by the same factor.
    with torch.no_grad():
        imgs = G.synthesis(G.mapping(torch.randn(512, cfg.z_dim, generator=torch.Generator().manual_seed(seed))))
        k = 0.35 / float(imgs.std())
        for block in G.synthesis.blocks():
            block.torgb.weight.mul_(k)
            block.torgb.bias.mul_(k)
    return G


def true_trajectories(w1, basis, dirs, amplitudes, periods, frames, g):
    """w_t = w_1 + sum_k A_k s_k sin(2 pi t / P_k + phi_k) V_k, t = 0..frames-1 ([B, T, w_dim]):
    one sinusoid per direction, each with its own amplitude A_k (in stdevs), period P_k and random phase."""
    t = torch.arange(frames, dtype=torch.float64)
    phase = torch.rand(w1.shape[0], len(dirs), generator=g, dtype=torch.float64) * 2 * math.pi
    amp = torch.tensor(amplitudes, dtype=torch.float64)
    per = torch.tensor(periods, dtype=torch.float64)
    coef = amp * torch.sin(2 * math.pi * t[None, :, None] / per + phase[:, None, :])  # [B, T, K]
    coef = coef - coef[:, :1]  # start at w_1
    steps = (basis.components[dirs] * basis.stdev[dirs, None]).double()  # [K, w_dim]
    return (w1.double()[:, None] + coef @ steps).float()


def rotated_truth(basis, dirs, degrees: float, n_pca: int):
    """The true movements turned away from the PCA axes (``--rotate``): a copy of ``basis``
    whose rows ``dirs`` are, in whitened PCA coordinates, cos(a) e_k + sin(a) e_k' with k' the
    next direction outside ``dirs``, as a unit w-space row with its stdev. The motion model
    keeps the real basis; the videos and every measure use this one."""
    import dataclasses

    others = [d for d in range(n_pca) if d not in dirs]
    if len(others) < len(dirs):
        raise SystemExit(f"--rotate needs {len(dirs)} directions besides the true ones among --n-pca {n_pca}")
    a = math.radians(degrees)
    comps, stdev = basis.components.clone(), basis.stdev.clone()
    for k, k2 in zip(dirs, others, strict=False):  # others: at least as many as dirs
        step = math.cos(a) * basis.stdev[k] * basis.components[k] + math.sin(a) * basis.stdev[k2] * basis.components[k2]
        stdev[k] = step.norm()
        comps[k] = step / stdev[k]
    return dataclasses.replace(basis, components=comps, stdev=stdev), others[: len(dirs)]


def render_videos(G, ws, folder: Path, noise_seed: int):
    import imageio.v3 as iio

    from mocohd_cli.render import to_uint8

    g = torch.Generator().manual_seed(noise_seed)
    for v in range(ws.shape[0]):
        noise = G.synthesis.make_noise(1, generator=g)
        with torch.no_grad():
            frames = to_uint8(G.synthesis(ws[v], noise=noise)).numpy()
        out = folder / f"video_{v:04d}"  # lossless PNG frames
        out.mkdir()
        for i, f in enumerate(frames):
            iio.imwrite(out / f"{i:04d}.png", f)


def frame_effects(G, steps, frame_size: int, videos: int, seed: int = 7):
    """How the training frames (pooled to ``frame_size``) change along each latent step [K, w_dim],
    by central differences at ``videos`` random w's (each with its own noise), per unit step.
    Returns (changes [videos, K, pixels], the frames at w [videos, pixels])."""
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    k = len(steps)
    effects, firsts = [], []
    with torch.no_grad():
        for _ in range(videos):
            w = G.mapping(torch.randn(1, G.z_dim, generator=g))
            noise = G.synthesis.make_noise(1, generator=g)
            x = G.synthesis(torch.cat([w, w + 0.1 * steps, w - 0.1 * steps]), noise=noise)
            x = F.interpolate(x, size=(frame_size, frame_size), mode="area").flatten(1)
            firsts.append(x[0])
            effects.append((x[1 : k + 1] - x[k + 1 :]) / 0.2)
    return torch.stack(effects), torch.stack(firsts)


def pixel_effects(G, basis, dirs, frame_size: int, videos: int = 64, seed: int = 7):
    """Can the true directions be told apart in the training frames? For each, the change of the
    frames per stdev along it (``frame_effects``). Returns (mean norm per direction [K], mean
    cosine between the directions' changes [K, K])."""
    e, _ = frame_effects(G, basis.components[dirs] * basis.stdev[dirs, None], frame_size, videos, seed)
    unit = e / e.norm(dim=2, keepdim=True)
    return e.norm(dim=2).mean(0), torch.einsum("vkp,vjp->kj", unit, unit) / len(e)


def identifiability(
    G, basis, dirs, amplitudes, frame_size: int, n_pca: int, videos: int = 128, seed: int = 7, bandwidths=(1.0, 0.5)
) -> dict:
    """Can movement off the true directions make the frames move as the true movements do? To
    first order a movement along latent covariance C changes the frames (pooled to
    ``frame_size``) with covariance J C J^T, J the generator's Jacobian at the video's w, along
    the ``n_pca`` directions the motion model moves, measured by central differences at ``videos``
    random w's. The target is the case's movement (all true directions at their amplitudes, then each one alone),
    C = sum_k A_k^2 e_k e_k^T; the candidates are every C with no true-by-true entry (off-span
    directions, and their cross terms with the true ones: in-phase mixtures). Returned: the
    relative residual of the best candidate (least squares, 0: indistinguishable, 1: nothing in
    common) when compared pooled over videos (what a loss on pooled statistics sees), weighted
    by a Gaussian kernel on the first frames at each bandwidth (times the median distance;
    compared given the first frame), and video by video (each video's own J)."""
    from mocohd_cli import losses

    n = n_pca
    e, x0 = frame_effects(G, basis.components[:n] * basis.stdev[:n, None], frame_size, videos, seed)
    e = e.double()  # [V, n, P] per stdev
    gram = torch.einsum("vap,wcp->vawc", e, e)
    pairs = [(a, b) for a in range(n) for b in range(a, n)]
    ia, ib = torch.tensor([p[0] for p in pairs]), torch.tensor([p[1] for p in pairs])
    on = set(dirs)
    free = [i for i, (a, b) in enumerate(pairs) if not (a in on and b in on)]

    def residuals(weight):  # weight [V, V] over pairs of videos
        m4 = torch.einsum("vw,vawc,vbwd->abcd", weight, gram, gram) / weight.sum()
        q = 0.5 * (m4[ia[:, None], ib[:, None], ia[None], ib[None]] + m4[ia[:, None], ib[:, None], ib[None], ia[None]])
        out = {}
        for name, target in [("all", dict(zip(dirs, amplitudes, strict=True)))] + [
            (f"direction {d}", {d: a}) for d, a in zip(dirs, amplitudes, strict=True)
        ]:
            t = torch.zeros(len(pairs), dtype=torch.float64)
            for d, a in target.items():
                t[pairs.index((d, d))] = a * a
            tt, qt, qf = t @ q @ t, q[free] @ t, q[free][:, free]
            if not free:  # every direction the model moves is a true one: no other movement to try
                out[name] = 1.0
                continue
            c = torch.linalg.lstsq(
                qf + 1e-9 * qf.diagonal().mean() * torch.eye(len(free), dtype=torch.float64), qt
            ).solution
            out[name] = float((tt - 2 * c @ qt + c @ qf @ c).clamp(min=0).sqrt() / tt.sqrt())
        return out

    result = {"pooled": residuals(torch.ones(videos, videos, dtype=torch.float64))}
    for h in bandwidths:  # the kernel of the cross-spectrum term given the first frame
        result[f"first-frame kernel {h:g}"] = residuals(losses._content_kernel(x0, x0, h)[2].double())
    result["video by video"] = residuals(torch.eye(videos, dtype=torch.float64))
    return result


def term_sensitivity(
    G,
    basis,
    dirs,
    amplitudes,
    periods,
    frames: int,
    frame_size: int,
    batch: int,
    pairs: int = 64,
    seed: int = 11,
    bank=None,
    content: float | None = None,
) -> dict:
    """What ``losses.cross_spectrum_matching`` sees of motion off the true directions. Clips of the
    real kind (the case's movements) are compared with clips of the same kind (the term's noise
    floor), with clips that add as much motion variance again (in w units) along the two
    largest-variance directions not in ``dirs``, each at the case's first period (half the
    variance off the true span, about what the bank learns), and with clips whose movements run
    at 1.5 times their periods (a rhythm error, for scale). With ``bank``, a trained motion model with oscillators, also
    its bank's clips (lambda 0) and those of the same bank with its movements cut to the true
    directions. Returns, per variant, the mean and stdev of the term over ``pairs`` pairs of
    batches of ``batch`` clips, pooled to ``frame_size``. ``content``: the term's first-frame
    bandwidth (compared given the first frame; None: pooled, as trained by default)."""
    import torch.nn.functional as F

    from mocohd_cli import losses
    from mocohd_cli.frames import VideoNoise, synthesize

    g = torch.Generator().manual_seed(seed)
    stdev = basis.stdev.double()
    off = [d for d in range(len(stdev)) if d not in dirs][:2]
    on_energy = sum(a * a * float(stdev[d]) ** 2 for a, d in zip(amplitudes, dirs, strict=True))
    a_off = math.sqrt(on_energy / sum(float(stdev[d]) ** 2 for d in off))
    variants = {
        "the same kind": (dirs, amplitudes, periods),
        f"+ directions {off} at period {periods[0]:g} (half the variance)": (
            dirs + off,
            amplitudes + [a_off] * 2,
            periods + [periods[0]] * 2,
        ),
        "periods x 1.5": (dirs, amplitudes, [1.5 * p for p in periods]),
    }

    models = {}
    if bank is not None:
        models["the trained bank"] = _bank_alone(bank)
        cut = models["the trained bank, cut to the true directions"] = _bank_alone(bank).free_bank()
        keep = torch.zeros(cut.cfg.n_pca, dtype=torch.bool)
        keep[dirs] = True
        with torch.no_grad():
            cut.osc_move[:, ~keep] = 0
        variants.update(dict.fromkeys(models))

    def clips(kind):
        with torch.no_grad():
            w1 = G.mapping(torch.randn(batch, G.z_dim, generator=g))
            if kind in models:
                ws = models[kind](w1, frames, generator=g)
            else:
                ws = true_trajectories(w1, basis, *variants[kind], frames, g)
            noise = VideoNoise(G, batch, "fixed", g)  # one draw per video, shared by its frames, as in training
            x = synthesize(G, ws.flatten(0, 1), noise(torch.arange(batch).repeat_interleave(frames))).clamp(-1, 1)
            x = F.interpolate(x, size=(frame_size, frame_size), mode="area")
        return x.reshape(batch, frames, *x.shape[1:])

    out = {}
    for kind in variants:
        vals = torch.tensor(
            [float(losses.cross_spectrum_matching(clips(kind), clips("the same kind"), content)) for _ in range(pairs)]
        )
        out[kind] = {"mean": float(vals.mean()), "stdev": float(vals.std())}
    return out


def _checkpoint_motion(path: Path, basis):
    """The motion model of a training checkpoint, as it stood at that step; refused unless it was
    trained on this generator's PCA basis (this case's seed)."""
    from mocohd_cli import MocohdError
    from mocohd_cli.motion.generator import MotionConfig, MotionGenerator
    from mocohd_cli.train import load_checkpoint

    refused = f"--bank: {path} is not a run with an oscillator bank on this generator (check --seed)"
    try:
        ck = load_checkpoint(path)
        cfg = json.loads(ck["config"])
        M = MotionGenerator(
            MotionConfig(
                w_dim=basis.components.shape[1],
                noise_dim=cfg["noise_dim"],
                h_dim=cfg["h_dim"],
                n_pca=cfg["n_pca"],
                w_residual=cfg["w_residual"],
                oscillators=cfg["oscillators"],
                osc_basis=cfg.get("osc_basis", MotionConfig.osc_basis),
            )
        )
        M.load_state_dict(ck["gan"]["M"])
    except MocohdError as e:
        raise SystemExit(f"--bank: {e}") from None
    except (KeyError, RuntimeError, ValueError):  # another kind of run, or another w size
        raise SystemExit(refused) from None
    if not M.cfg.oscillators or not torch.allclose(M.pca_components, basis.components[: M.cfg.n_pca], atol=1e-5):
        raise SystemExit(refused)
    return M.eval()


def measure(M, G, basis, dirs, frames: int, videos: int = 256, seed: int = 123):
    """The motion statistics (``mocohd_cli.motion.stats``) of M's trajectories along the true directions."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        w1 = G.mapping(torch.randn(videos, G.z_dim, generator=g))
        ws = M(w1, frames, generator=g)
    return trajectory_stats(ws, basis.components[dirs])


def _bank_alone(M):
    """A copy of motion model M whose LSTM steps are switched off (lambda 0): its bank alone."""
    import dataclasses

    bank = copy.deepcopy(M)
    bank.cfg = dataclasses.replace(M.cfg, w_residual=0.0)
    return bank


def parts(M, G, basis, dirs, frames: int) -> dict:
    """With an oscillator bank: the motion of the LSTM's steps alone (the bank's movements
    zeroed) and of the bank alone (lambda 0), each measured as ``measure`` does. Which part
    moves which direction, which part puts motion off the true span, and which part locks the
    directions together (coherence)."""
    lstm, bank = copy.deepcopy(M).free_bank(), _bank_alone(M)
    with torch.no_grad():
        lstm.osc_move.zero_()
    out = {}
    for name, part in (("LSTM alone", lstm), ("bank alone", bank)):
        s, _ = measure(part, G, basis, dirs, frames)
        coh = float(s.coherence.masked_fill(torch.eye(len(dirs), dtype=torch.bool), 0).max())
        out[name] = {
            "energy": s.on_span,
            "step": s.step,
            "within": _within(s),
            "periods": s.periods.tolist(),
            "coherence": coh,
        }
    return out


def trajectory_stats(ws, V):
    """(motion_stats of trajectories [B, T, w_dim] along V, the one dominant frequency of all of V)."""
    from mocohd_cli.motion.stats import dominant_frequency, motion_stats

    return motion_stats(ws, V), dominant_frequency((ws.double() - ws[:, :1].double()) @ V.double().T)


def _within(s) -> list[float]:
    """Each true direction's share of the step energy within their span (MotionStats -> [K])."""
    return (s.shares / s.shares.sum().clamp(min=1e-300)).tolist()


def row(step: int, seconds: float, measured, real) -> dict:
    """One checkpoint's measures: overall (energy, freq) and per direction (its share of the energy in
    the true span against the real clips', its period against the truth), and the coherence."""
    s, freq = measured
    within = _within(s)
    return {
        "step": step,
        "seconds": seconds,
        "energy": s.on_span,
        "freq": freq,
        "within": within,
        "share_error": max(abs(a - b) for a, b in zip(within, real["within"], strict=True)),
        "periods": s.periods.tolist(),
        "period_error": max(abs(p / q - 1) for p, q in zip(s.periods.tolist(), real["periods"], strict=True)),
        "coherence": float(s.coherence.masked_fill(torch.eye(len(within), dtype=torch.bool), 0).max()),
    }


CASES = {
    # one movement (a single period) along three directions
    "single": {"dirs": "1,3,5", "periods": "8", "amplitudes": "1"},
    # three independent movements, each its own period, amplitude and random phase
    "multi": {"dirs": "1,3,5", "periods": "5,8,12", "amplitudes": "0.4,0.8,1.3"},
}


def _per_direction(text: str, n: int, flag: str) -> list[float]:
    values = [float(v) for v in text.split(",")]
    if len(values) == 1:
        values = values * n
    if len(values) != n:
        raise SystemExit(f"{flag} needs 1 or {n} values, got {text!r}")
    return values


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _train_settings(items: list[str], config=None, flag: str = "--train") -> dict:
    """--train KEY=VALUE pairs -> keyword arguments of ``config`` (TrainConfig), each typed like its default."""
    import dataclasses

    from mocohd_cli.train import TrainConfig

    defaults = {f.name: f.default for f in dataclasses.fields(config or TrainConfig)}
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        if key not in defaults:
            raise SystemExit(f"{flag}: no setting {key!r}")
        if defaults[key] is not None:
            kind = type(defaults[key])
        else:  # a setting whose default is None: a number, or text (motion_d=latent)
            kind = int if value.lstrip("-").isdigit() else float if _is_number(value) else str
        out[key] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
    return out


def train_encoder_for(
    gpath: Path,
    steps: int,
    seed: int,
    data: Path,
    ws: torch.Tensor,
    basis,
    n_pca: int,
    settings: dict | None = None,
    refine_steps: int = 0,
    refine_videos: int = 8,
    calibrate: int = 0,
) -> str:
    """An encoder of the frozen generator ('frozen-encoder', ``steps`` steps on its samples), and how
    well it finds the videos' true trajectories: the rms error of its per-frame PCA coordinates (in
    stdevs, over the first ``n_pca`` directions) and of its frame-to-frame steps, against the true
    ones' rms step. ``refine_steps``: then also refine the first ``refine_videos`` videos' encoded
    trajectories by optimisation (``refine_trajectories``) and measure them the same way.
    ``calibrate``: also measure them corrected by the encoder's calibration on that many pairs
    (``train.motion_gan.inverse_gain``, as ``--train calibrate_encoder=N`` trains with)."""
    import dataclasses

    from mocohd_cli.data.trajectories import encode_dataset
    from mocohd_cli.loaders import load_encoder, load_image_generator
    from mocohd_cli.train.encoder_trainer import EncoderTrainConfig, train_encoder

    t0 = time.perf_counter()
    cfg = EncoderTrainConfig(image=str(gpath), name="frozen-encoder", steps=steps, seed=seed, device="cpu",
                             workers=0, save_every=steps, sample_every=10**9, log_every=steps)  # fmt: skip
    cfg = dataclasses.replace(cfg, **(settings or {}))
    train_encoder(cfg)
    seconds = time.perf_counter() - t0
    G = load_image_generator(gpath)
    E = load_encoder("frozen-encoder", G)
    cache = encode_dataset(data, E)
    index = {v["source"]: sig for sig, v in cache.videos.items()}
    encoded = torch.stack([cache.whole(index[f"video_{v:04d}"]).mean(dim=1) for v in range(ws.shape[0])])
    print(
        f"encoder: {steps} steps in {seconds / 60:.1f} min; " + trajectory_errors(ws, encoded, basis, n_pca), flush=True
    )
    if calibrate:
        from mocohd_cli.train.motion_gan import encoder_gain, frame_error, inverse_gain

        V, s = basis.components[:n_pca], basis.stdev[:n_pca]
        A, S = encoder_gain(G, E, V, s, calibrate, seed=seed)
        C = inverse_gain(A)
        est = (encoded @ V.T) / s
        calibrated = encoded + ((est @ C.T - est) * s) @ V
        print(f"calibrated on {calibrate} pairs: " + trajectory_errors(ws, calibrated, basis, n_pca), flush=True)
        # how much of the encoded trajectories' coherence the linear model of the encoder explains: the
        # true ones through A (what it reports, without its errors), through C A (what the correction
        # leaves of that) and C (A c + n) with each frame's error n drawn from S / 2 (as training's
        # calibration_side both reports the fakes)
        true_c = (ws @ V.T) / s
        moving = true_c.diff(dim=1).square().mean(dim=(0, 1)) > 1e-6
        g = torch.Generator().manual_seed(seed)
        noise = torch.randn(true_c.shape, generator=g) @ frame_error(S).T
        modelled = (true_c @ A.T + noise - noise[:, :1]) @ C.T
        through = {"A": true_c @ A.T, "C A": true_c @ (C @ A).T, "C (A c + n)": modelled}
        print(
            "the true trajectories through the gain, coherence between the moving directions: "
            + ", ".join(f"{k} {_clip_coherence(v[..., moving], 16):.2f}" for k, v in through.items()),
            flush=True,
        )
    if refine_steps:
        refine_trajectories(G, data, ws, encoded, basis, n_pca, refine_steps, refine_videos)
    return "frozen-encoder"


def trajectory_errors(ws: torch.Tensor, estimated: torch.Tensor, basis, n_pca: int, clip: int = 16) -> str:
    """How well ``estimated`` trajectories [B, T, w_dim] find the true ones ``ws``, over the first
    ``n_pca`` PCA directions in stdevs: the per-frame error, the frame-to-frame jitter (the error of
    the steps) against the true rms step, the gain of the estimated steps along the directions the
    videos move along (least-squares slope on the true steps), their rms step off them, and the
    coherence between the moving directions over clips of ``clip`` frames, as training sees them."""
    V, s = basis.components[:n_pca], basis.stdev[:n_pca]
    true_c, est_c = (ws @ V.T) / s, (estimated @ V.T) / s
    d_true, d_est = true_c.diff(dim=1), est_c.diff(dim=1)
    gain = (d_est * d_true).sum(dim=(0, 1)) / d_true.square().sum(dim=(0, 1)).clamp_min(1e-12)
    moving = d_true.square().mean(dim=(0, 1)) > 1e-6

    def rms(x):
        return float(x.square().mean().sqrt())

    return (
        f"per-frame error {rms(est_c - true_c):.3f} stdev, frame-to-frame jitter {rms(d_est - d_true):.3f} stdev "
        f"(true rms step {rms(d_true):.3f}, estimated rms step {rms(d_est):.3f}) over {n_pca} directions; gain of "
        f"the estimated steps along the moving directions {_fmt(gain[moving].tolist())}, rms step off them "
        f"{rms(d_est[..., ~moving]):.3f}; coherence between the moving directions over {clip}-frame clips "
        f"{_clip_coherence(est_c[..., moving], clip):.2f} (true {_clip_coherence(true_c[..., moving], clip):.2f})"
    )


def _clip_coherence(coords: torch.Tensor, clip: int) -> float:
    """The largest phase coherence between two of the K signals of [B, T, K] over their
    non-overlapping clips of ``clip`` frames (0 for fewer than two signals)."""
    from mocohd_cli.motion.stats import coherence

    b, t, k = coords.shape
    if k < 2 or t < clip:
        return 0.0
    clips = coords[:, : t - t % clip].reshape(b * (t // clip), clip, k)
    return float(coherence(clips).masked_fill(torch.eye(k, dtype=torch.bool), 0).max())


def refine_trajectories(G, data: Path, ws, encoded, basis, n_pca: int, steps: int, videos: int, lr: float = 0.01):
    """Refine the encoded trajectories of the first ``videos`` videos by optimisation: every frame's w
    and one set of noise maps per video (a video's noise is fixed), from the encoder's answers and
    zero noise, Adam on the pixels' squared error, all frames at once; measured every 50 steps."""
    import imageio.v3 as iio

    frames = torch.stack(
        [
            torch.stack([torch.from_numpy(iio.imread(f)) for f in sorted((data / f"video_{v:04d}").glob("*.png"))])
            for v in range(videos)
        ]
    )
    x = frames.permute(0, 1, 4, 2, 3).float().div(127.5).sub(1).flatten(0, 1)  # [V * T, 3, R, R]
    T = frames.shape[1]
    W = encoded[:videos].clone().requires_grad_(True)
    maps = [torch.zeros(videos, *m.shape[1:], requires_grad=True) for m in G.synthesis.make_noise(1)]
    opt = torch.optim.Adam([W, *maps], lr=lr)
    t0 = time.perf_counter()
    for i in range(steps):
        img = G.synthesis(W.flatten(0, 1), noise=[m.repeat_interleave(T, dim=0) for m in maps])
        loss = (img - x).square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (i + 1) % 50 == 0 or i + 1 == steps:
            print(
                f"refined ({i + 1} steps, {videos} videos, {time.perf_counter() - t0:.0f} s, pixel error "
                f"{float(loss.detach()):.4f}): " + trajectory_errors(ws[:videos], W.detach(), basis, n_pca),
                flush=True,
            )


def _fmt(values, spec: str = ".2f") -> str:
    return "[" + " ".join(format(v, spec) for v in values) + "]"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--minutes", type=float, default=20.0, help="training time budget (stops at the first checkpoint past it)"
    )
    ap.add_argument("--steps", type=int, default=100000, help="upper bound on training steps")
    ap.add_argument("--eval-every", type=int, default=25, help="steps between checkpoints / measurements")
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--w-dim", type=int, default=64)
    ap.add_argument("--n-pca", type=int, default=16)
    ap.add_argument(
        "--case",
        choices=sorted(CASES),
        default="single",
        help="single: one period along three directions; multi: three independent movements",
    )
    ap.add_argument(
        "--rotate",
        type=float,
        default=0.0,
        metavar="DEGREES",
        help="turn each true movement this far "
        "from its PCA direction toward the next direction outside them (movements off the axes)",
    )
    ap.add_argument("--dirs", help="the true PCA directions (default: the case's)")
    ap.add_argument("--periods", help="true period of each direction, frames (one value: all; default: the case's)")
    ap.add_argument(
        "--amplitudes", help="amplitude of each direction in its stdevs (one value: all; default: the case's)"
    )
    ap.add_argument("--videos", type=int, default=96)
    ap.add_argument("--video-frames", type=int, default=48)
    ap.add_argument("--frames", type=int, default=16, help="clip length")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument(
        "--frame-size", type=int, default=16, help="training frame size (generated frames are pooled to it)"
    )
    ap.add_argument("--keep", action="store_true", help="keep the work folder (videos, run, models)")
    ap.add_argument(
        "--lr",
        type=float,
        default=1e-3,
        help="Adam lr of every network (the official 1e-4 is too slow for a 20-minute budget)",
    )
    ap.add_argument("--w-residual", type=float, default=1.0)
    ap.add_argument("--h-dim", type=int, default=128)
    ap.add_argument("--w-mutual", type=float, default=1.0, help="motion-diversity weight (official: 1)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--d-channels", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--train",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other TrainConfig setting, e.g. g_steps=1 (repeatable; for ablations)",
    )
    ap.add_argument(
        "--ema-half-life",
        type=float,
        nargs="*",
        default=[],
        help="also measure exponential moving "
        "averages of the motion model's weights over the checkpoints, with these half-lives in steps",
    )
    ap.add_argument(
        "--term-sensitivity",
        type=int,
        nargs="*",
        metavar="BATCH",
        help="only print what the "
        "cross-spectrum term sees of off-span motion, at these batch sizes (default: --batch), then stop",
    )
    ap.add_argument(
        "--content",
        type=float,
        nargs="*",
        default=[None],
        metavar="H",
        help="with --term-sensitivity: "
        "the term given the first frame, at these bandwidths (times the median first-frame distance)",
    )
    ap.add_argument("--pairs", type=int, default=64, help="with --term-sensitivity: pairs of batches per variant")
    ap.add_argument(
        "--bank",
        type=Path,
        help="with --term-sensitivity: a training checkpoint (checkpoint.pt) of "
        "this case, seed and recipe with an oscillator bank, whose bank is compared too",
    )
    ap.add_argument("--json", type=Path, help="write the curve here")
    ap.add_argument(
        "--encoder-steps",
        type=int,
        default=0,
        help="train an image encoder of the frozen generator for this many steps (on its samples) and train "
        "motion against the videos' encoded trajectories (--train motion_d=latent or both; default both); "
        "prints the encoder's error and jitter against the true trajectories",
    )
    ap.add_argument(
        "--encoder-setting",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="with --encoder-steps: an EncoderTrainConfig setting, e.g. w_steps=1 (repeatable)",
    )
    ap.add_argument(
        "--refine-steps",
        type=int,
        default=0,
        help="with --encoder-steps: also refine the encoded trajectories of --refine-videos videos by "
        "optimisation (every frame's w, one set of noise maps per video) and measure them",
    )
    ap.add_argument("--refine-videos", type=int, default=8)
    ap.add_argument(
        "--encoder-only",
        action="store_true",
        help="with --encoder-steps: stop after measuring the encoder's trajectories (no motion training)",
    )
    ap.add_argument(
        "--identifiability",
        action="store_true",
        help="only print how well movement off the true "
        "directions can make the frames move as the true movements do (pooled, given the first frame, per video)",
    )
    ap.add_argument(
        "--pixel-effects",
        action="store_true",
        help="only print how the true directions change the "
        "training frames (size per stdev, cosines between them), then stop",
    )
    args = ap.parse_args()
    case = CASES[args.case]
    dirs = [int(d) for d in (args.dirs or case["dirs"]).split(",")]
    periods = _per_direction(args.periods or case["periods"], len(dirs), "--periods")
    amplitudes = _per_direction(args.amplitudes or case["amplitudes"], len(dirs), "--amplitudes")
    extra = _train_settings(args.train)
    if any(h is not None and not h > 0 for h in args.content):
        raise SystemExit(f"--content: bandwidths must be > 0, got {args.content}")
    if args.rotate and (args.pixel_effects or args.identifiability or args.term_sensitivity is not None):
        raise SystemExit(
            "--rotate applies to training runs only (not --pixel-effects, --identifiability, --term-sensitivity)"
        )
    torch.set_num_threads(args.threads)

    work = Path(tempfile.mkdtemp(prefix="mocohd-recovery-"))
    os.environ["MOCOHD_HOME"] = str(work / "home")
    from mocohd_cli.formats import canonical
    from mocohd_cli.loaders.motion_models import load_motion
    from mocohd_cli.motion.generator import MotionConfig, MotionGenerator
    from mocohd_cli.pca import fit_pca
    from mocohd_cli.train import TrainConfig, train

    G = make_generator(args.resolution, args.w_dim, args.seed)
    gpath = work / "frozen.safetensors"
    canonical.save_model(gpath, G.state_dict(), kind="image", family="stylegan2", config=G.cfg.to_dict())
    basis = fit_pca(G, samples=50_000, batch=5000, seed=0)

    if args.pixel_effects:
        size, cos = pixel_effects(G, basis, dirs, args.frame_size)
        print(
            f"directions {dirs}: frame change per stdev (mean |d frame|, {args.frame_size} px, [-1, 1]) "
            f"{_fmt(size.tolist())}"
        )
        print("cosines between their frame changes:\n" + "\n".join(_fmt(r) for r in cos.tolist()))
        return
    if args.identifiability:
        print(
            f"the best movement off the true directions (and in phase with them), against the case's: relative "
            f"residual of the frames' change covariance ({args.frame_size} px; 0: indistinguishable)"
        )
        for how, res in identifiability(
            G, basis, dirs, amplitudes, args.frame_size, args.n_pca, videos=args.videos
        ).items():
            print(f"  {how}: " + ", ".join(f"{k} {v:.3f}" for k, v in res.items()), flush=True)
        return
    if args.term_sensitivity is not None:
        bank = _checkpoint_motion(args.bank, basis) if args.bank else None
        for b in args.term_sensitivity or [args.batch]:
            for h in args.content:
                given = "" if h is None else f", given the first frame (bandwidth {h:g})"
                for kind, v in term_sensitivity(
                    G,
                    basis,
                    dirs,
                    amplitudes,
                    periods,
                    args.frames,
                    args.frame_size,
                    b,
                    pairs=args.pairs,
                    bank=bank,
                    content=h,
                ).items():
                    print(
                        f"batch {b}: {kind}: cross-spectrum term{given} {v['mean']:+.3f} (stdev {v['stdev']:.3f} "
                        f"over {args.pairs} pairs)",
                        flush=True,
                    )
        return
    truth = basis
    if args.rotate:
        truth, partners = rotated_truth(basis, dirs, args.rotate, args.n_pca)
        print(f"true movements turned {args.rotate:g} degrees from directions {dirs} toward {partners}", flush=True)
    g = torch.Generator().manual_seed(args.seed + 1)
    with torch.no_grad():
        w1 = G.mapping(torch.randn(args.videos, G.z_dim, generator=g))
    ws = true_trajectories(w1, truth, dirs, amplitudes, periods, args.video_frames, g)
    data = work / "videos"
    data.mkdir()
    t0 = time.perf_counter()
    render_videos(G, ws, data, args.seed + 2)
    print(
        f"rendered {args.videos} videos of {args.video_frames} frames in {time.perf_counter() - t0:.1f} s", flush=True
    )
    V = truth.components[dirs]
    windows = torch.cat([ws[:, o : o + args.frames] for o in range(0, args.video_frames - args.frames + 1, 4)])
    rs, true_freq = trajectory_stats(windows, V)  # the real clips, measured as the learned motion will be
    real = {
        "within": rs.shares.tolist(),
        "periods": rs.periods.tolist(),
        "coherence": float(rs.coherence.masked_fill(torch.eye(len(dirs), dtype=torch.bool), 0).max()),
    }
    print(
        f"true: directions {dirs} of {args.n_pca}, periods {periods} frames, amplitudes {amplitudes} stdev", flush=True
    )
    print(
        f"real clips ({args.frames} frames): frequency of all {true_freq:.4f} cycles/frame; shares "
        f"{_fmt(real['within'])}, periods {_fmt(real['periods'], '.2f')}, coherence {real['coherence']:.2f}",
        flush=True,
    )

    torch.manual_seed(args.seed)
    M0 = MotionGenerator(
        MotionConfig(
            w_dim=args.w_dim,
            noise_dim=args.w_dim,
            h_dim=args.h_dim,
            n_pca=args.n_pca,
            w_residual=args.w_residual,
            oscillators=int(extra.get("oscillators", 0)),
        ),
        basis.components,
        basis.stdev,
    )
    s0 = measure(M0, G, truth, dirs, args.frames)
    e0, f0 = s0[0].on_span, s0[1]
    share = float(truth.stdev[dirs].square().sum() / basis.stdev[: args.n_pca].square().sum())
    print(
        f"untrained: energy {e0:.1%} (variance-weighted share of the true directions {share:.1%}, "
        f"n_true/n_pca {len(dirs) / args.n_pca:.1%}), frequency {f0:.4f}",
        flush=True,
    )
    curve = [row(0, 0.0, s0, real)]
    start = time.perf_counter()

    monitor = {}
    ema = {}  # the moving average of the checkpoints' motion weights (--ema-half-life)

    def on_event(kind, info):
        if kind == "monitor":  # training's own monitor (pixel change and drift against the real clips)
            monitor.update(info["values"])
        if kind == "checkpoint":
            M = load_motion("recovery")
            sec = time.perf_counter() - start
            r = row(info["step"], sec, measure(M, G, truth, dirs, args.frames), real)
            if monitor:
                r["monitor"] = {k: monitor[k] for k in ("distance", "change", "drift")} | {
                    "real_change": monitor["real"]["change"],
                    "real_drift": monitor["real"]["drift"],
                }
            curve.append(r)
            line = (
                f"step {info['step']:6d}  {sec / 60:5.1f} min  energy {r['energy']:6.1%}  freq {r['freq']:.4f} "
                f"({r['freq'] / true_freq - 1:+.0%})"
            )
            if len(dirs) > 1:
                line += (
                    f"  shares {_fmt(r['within'])} (err {r['share_error']:.2f})  periods {_fmt(r['periods'], '.2f')}"
                    f" (err {r['period_error']:.0%})  coh {r['coherence']:.2f}"
                )
            if monitor:
                line += f"  monitor {monitor['distance']:.3f}"
            print(line, flush=True)
            if M.cfg.oscillators:  # the bank's largest movements, by the size of u_k
                r["oscillators"] = [list(ps) for ps in M.bank()[:4]]
                print(
                    "    oscillators (period: size) " + ", ".join(f"{p:.2f}: {z:.2f}" for p, z in r["oscillators"]),
                    flush=True,
                )
                r["parts"] = parts(M, G, truth, dirs, args.frames)
                print(
                    "    "
                    + ", ".join(
                        f"{k}: energy {v['energy']:.1%}, rms step {v['step']:.3f}, shares "
                        f"{_fmt(v['within'])}, periods {_fmt(v['periods'], '.1f')}, coh {v['coherence']:.2f}"
                        for k, v in r["parts"].items()
                    ),
                    flush=True,
                )
            if extra.get("motion_ema"):  # the store holds the average: the model trained, as it is, beside it
                from mocohd_cli.train import run_dir

                trained = _checkpoint_motion(run_dir("recovery") / "checkpoint.pt", basis)
                t = r["trained"] = row(info["step"], sec, measure(trained, G, truth, dirs, args.frames), real)
                print(
                    f"    trained (not averaged): energy {t['energy']:.1%}  shares {_fmt(t['within'])} (err "
                    f"{t['share_error']:.2f})  periods {_fmt(t['periods'], '.2f')} (err {t['period_error']:.0%})"
                    f"  coh {t['coherence']:.2f}",
                    flush=True,
                )
            for half_life in args.ema_half_life:  # the checkpoints' weights averaged, then measured
                keep = 0.5 ** (args.eval_every / half_life)
                avg = ema.setdefault(half_life, {})
                for k, v in M.state_dict().items():
                    if k in avg and v.is_floating_point():
                        avg[k].lerp_(v, 1 - keep)
                    else:
                        avg[k] = v.detach().clone()
                A = copy.deepcopy(M)
                A.load_state_dict(avg)
                e = r.setdefault("ema", {})[half_life] = row(
                    info["step"], sec, measure(A, G, truth, dirs, args.frames), real
                )
                print(
                    f"    EMA {half_life:g}: energy {e['energy']:.1%}  freq {e['freq'] / true_freq - 1:+.0%}  shares "
                    f"{_fmt(e['within'])} (err {e['share_error']:.2f})  periods {_fmt(e['periods'], '.2f')} "
                    f"(err {e['period_error']:.0%})  coh {e['coherence']:.2f}",
                    flush=True,
                )
            if sec > args.minutes * 60 and not curve[0].get("stopping"):
                curve[0]["stopping"] = True
                os.kill(os.getpid(), 2)  # SIGINT: the trainer saves and stops after this step

    if args.encoder_steps:  # before the run: the encoder's trajectories are its real motion
        from mocohd_cli.train.config import EncoderTrainConfig

        encoder_settings = _train_settings(args.encoder_setting, EncoderTrainConfig, "--encoder-setting")
        extra["encoder"] = train_encoder_for(
            gpath,
            args.encoder_steps,
            args.seed,
            data,
            ws,
            basis,
            args.n_pca,
            encoder_settings,
            args.refine_steps,
            args.refine_videos,
            extra.get("calibrate_encoder", 0),
        )
        if args.encoder_only:
            return
    # the training clips are taken from the rendered videos at time step 1, so frequencies compare directly
    cfg = TrainConfig(
        data=str(data),
        image=str(gpath),
        name="recovery",
        domain="in",
        steps=args.steps,
        batch=args.batch,
        lr=args.lr,
        frame_size=args.frame_size,
        frames=args.frames,
        time_step=1,
        n_pca=args.n_pca,
        h_dim=args.h_dim,
        w_residual=args.w_residual,
        w_mutual=args.w_mutual,
        dv_channels=args.d_channels,
        workers=1,
        save_every=args.eval_every,
        sample_every=10**9,
        log_every=args.eval_every,
        pca_samples=50_000,
        seed=args.seed,
        device="cpu",
        **extra,
    )
    # the trainer's PCA basis must be the one the truth was built on: store it under the generator's identity
    from mocohd_cli import store
    from mocohd_cli.loaders import load_image_generator
    from mocohd_cli.loaders.pca_bases import save_pca

    ident = load_image_generator(gpath).identity
    basis.info.update(image_name=ident["name"], image_sha256=ident["weights_sha256"])
    store.kind_dir("pca", create=True)
    save_pca(basis, store.store_path("pca", "frozen"))
    start = time.perf_counter()  # the motion training's own clock (the encoder's time is printed above)
    train(cfg, on_event=on_event)

    curve[0].pop("stopping", None)
    best = max(curve, key=lambda r: r["energy"])
    last = curve[-1]
    print(
        f"\nfinal: step {last['step']}, {last['seconds'] / 60:.1f} min: energy {last['energy']:.1%} (target >= 60%), "
        f"frequency {last['freq']:.4f} vs true {true_freq:.4f} ({last['freq'] / true_freq - 1:+.0%}, target within 25%)"
    )
    print(f"best energy: {best['energy']:.1%} at step {best['step']}")
    if len(dirs) > 1:
        ok = last["share_error"] <= 0.15 and last["period_error"] <= 0.20 and last["energy"] >= 0.6
        ok = ok and last["coherence"] <= real["coherence"] + 0.2  # independent phases, as the real clips'
        print(
            f"per direction: shares {_fmt(last['within'])} vs real {_fmt(real['within'])} (max error "
            f"{last['share_error']:.2f}, target <= 0.15); periods {_fmt(last['periods'], '.2f')} vs real "
            f"{_fmt(real['periods'], '.2f')} (max error {last['period_error']:.0%}, target <= 20%); coherence "
            f"{last['coherence']:.2f} (real {real['coherence']:.2f}, target within 0.2) -> {'PASS' if ok else 'FAIL'}"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "args": vars(args) | {"json": str(args.json)},
                    "true_freq": true_freq,
                    "real": real,
                    "untrained_share": share,
                    "curve": curve,
                },
                indent=1,
            )
        )
    if args.keep:
        print(f"work folder: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
