"""Paths through an image generator's latent space, for making videos: seamless loops of learned
motion, and keyframe paths (seeds, inverted latents, photos) with learned motion optionally on top.

    render("loop.mp4", RenderConfig(frames=96, loop=True))          # the motion, closed into a loop
    path = KeyframePath(keys=[3, 7, "me"], path="spline", easing="ease-in-out", seconds=2)
    render("path.mp4", RenderConfig(keyframes=path, fps=24))         # 3 -> 7 -> me, 2 s a segment
    track = path.track(G, read_keyframes(path), fps=24, loop=True)  # closed: 3 -> 7 -> me -> 3
    ws = track(torch.arange(track.frames))                           # [frames, w_dim] (w+: [frames, num_ws, w_dim])

**Loops** (``loop_chunks``). A loop of N frames ends where it began: frame N - 1 flows into frame
0 as frame t flows into frame t + 1. The motion model's open walk w_0 .. w_{N+L} (L = ``overlap``,
min(N // 4, 48) frames past the end) is closed in three moves, each keeping what the walk does
from one frame to the next:

1. crossfade: the loop's first L steps turn from the walk's continuation past N (d_{N+t},
   where d_t = w_{t+1} - w_t) to the walk's own first steps (d_t): ``slerp`` of the two steps
   (direction turned along the great circle, length interpolated) with weight
   smoothstep(t / L). The step into frame 0 is then the step the walk takes after frame
   N - 1's, so the velocity does not break at the seam either.
2. bridge: what remains between where this walk ends and where it began (g) is taken off
   evenly, g / N a step (a Brownian bridge): the closing step is an ordinary step.
3. speed: a loop cannot drift, so the bridge takes (g . v_k)^2 / N of step energy from each
   principal direction v_k the walk drifted along (the demo motion loses 10-20% of its energy
   so, unevenly: its drift lies mostly outside the first directions). Each video's
   displacement from frame 0 along v_k is scaled by sqrt(F_k / (F_k - (g . v_k)^2 / N)), F_k
   the crossfaded walk's step energy along v_k (at most ``MAX_SPEEDUP``), so every principal
   direction moves as much as in the walk the loop was made from.

With an oscillator bank (``motion.generator``), ``fit_periods`` first rounds every period to a
whole number of cycles in N (at least one), so the oscillations close by themselves. Memory does
not grow with N: the walk is unrolled twice (once to N + L for the gap, the overlap's steps and
the step energies, once to make the frames), and between the passes only 2 (L + 1) w's per
video are kept. The price is a second pass of the LSTM, a few microseconds a step against
milliseconds to synthesise a frame.

**Keyframe paths** (``KeyframePath``, ``KeyframeTrack``). Each keyframe is a seed (its z is the
first z of ``render --seed K``), a latent of ``mocohd invert`` (a store name or a file; a file of
several latents gives one keyframe each) or a photo (inverted first, as ``render --start``
does). Segments of ``seconds`` x fps frames join them: ``linear``, ``slerp`` (about the origin
for z and about the average w for w: direction along the great circle, length linear) or
``spline`` (uniform Catmull-Rom, through every keyframe; an open path's ends continue straight).
``easing`` re-times each segment (``EASINGS``). Keyframe k lands on frame k x (frames per
segment) exactly: the path returns the keyframe itself there. A closed path (``loop``) goes on
from the last keyframe back to the first. With ``motion_weight`` m > 0 the motion model rides
on the path: frame t is path(t) + m (w_t - w_0) of its walk from the path's first w (looped with
``loop``). Paths are evaluated frame by frame from the keyframes, so memory does not grow with
the length either.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from . import ops
from .errors import MocohdError, UsageError
from .formats import sniff
from .frames import draw_w1
from .loaders.latents import Latent, check_latent, default_name, load_latent
from .loaders.vgg16 import have_vgg16
from .photos import read_frame

EASINGS = ("linear", "ease-in-out", "cubic")  # u; smoothstep 3u^2 - 2u^3; cubic in-out (4u^3, then mirrored)
PATHS = ("linear", "slerp", "spline")
SPACES = ("z", "w")
LOOP_MIN_FRAMES = 3  # fewer frames cannot go anywhere and come back
LOOP_OVERLAP = 48  # the most frames of the walk's continuation crossfaded into its beginning
MAX_SPEEDUP = 2.0  # the most a loop's displacement along a direction is scaled to keep its speed
SEED_MAX = (1 << 40) - 1  # render's --seed range: keyframe K is the first z of `render --seed K`
CHUNK = 16  # frames per chunk handed to the synthesis


# ----------------------------------------------------------------------------
# Geometry: easing, slerp, Catmull-Rom


def check_choice(name: str, value, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise UsageError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def ease(easing: str, u: torch.Tensor) -> torch.Tensor:
    """Re-timed segment positions: ``u`` in [0, 1] -> [0, 1], 0 -> 0 and 1 -> 1 exactly.
    'linear': u; 'ease-in-out': smoothstep 3u^2 - 2u^3 (at rest at both ends); 'cubic': 4u^3
    up to the middle, then mirrored (at rest at both ends, and longer)."""
    check_choice("easing", easing, EASINGS)
    if easing == "linear":
        return u
    if easing == "ease-in-out":
        return u * u * (3 - 2 * u)
    return torch.where(u < 0.5, 4 * u**3, 1 - (2 - 2 * u) ** 3 / 2)


def slerp(a: torch.Tensor, b: torch.Tensor, t, center: torch.Tensor | None = None) -> torch.Tensor:
    """Spherical interpolation from ``a`` to ``b`` [..., D] at ``t`` (broadcast): their directions
    about ``center`` (the origin when None) turned along the great circle, their lengths
    interpolated linearly; t = 0 gives ``a`` and t = 1 gives ``b`` exactly. Two vectors of one
    length stay at that length (on the sphere); nearly parallel ones are lerped."""
    t = torch.as_tensor(t, dtype=a.dtype, device=a.device)
    x, y = (a, b) if center is None else (a - center, b - center)
    nx, ny = x.norm(dim=-1, keepdim=True), y.norm(dim=-1, keepdim=True)
    ux, uy = x / nx.clamp_min(1e-12), y / ny.clamp_min(1e-12)
    omega = torch.acos((ux * uy).sum(dim=-1, keepdim=True).clamp(-1, 1))
    s = torch.sin(omega)
    turn = s > 1e-6
    wx = torch.where(turn, torch.sin((1 - t) * omega) / s.clamp_min(1e-6), 1 - t)
    wy = torch.where(turn, torch.sin(t * omega) / s.clamp_min(1e-6), t)
    out = (wx * ux + wy * uy) * torch.lerp(nx, ny, t)
    if center is not None:
        out = out + center
    return torch.where(t == 0, a, torch.where(t == 1, b, out))


def catmull_rom(p0, p1, p2, p3, u):
    """The uniform Catmull-Rom segment from ``p1`` (u = 0) to ``p2`` (u = 1), its tangents
    (p2 - p0) / 2 and (p3 - p1) / 2, in Hermite form; [..., D], ``u`` broadcast."""
    u2, u3 = u * u, u * u * u
    h00, h10, h01, h11 = 2 * u3 - 3 * u2 + 1, u3 - 2 * u2 + u, -2 * u3 + 3 * u2, u3 - u2
    return h00 * p1 + h10 * (p2 - p0) / 2 + h01 * p2 + h11 * (p3 - p1) / 2


# ----------------------------------------------------------------------------
# Loops of learned motion


def overlap(frames: int) -> int:
    """Frames of the walk's continuation crossfaded into a loop of ``frames`` frames."""
    return min(frames // 4, LOOP_OVERLAP)


def frame_count(frames: int, interpolate: int = 1, loop: bool = False) -> int:
    """Frames written for ``frames`` motion steps with ``interpolate`` K: (frames - 1) K + 1 in the
    open, frames x K in a loop (the in-betweens from the last frame back to the first included)."""
    return frames * interpolate if loop else (frames - 1) * interpolate + 1


def fit_periods(M, frames: int) -> tuple:
    """(the motion model, a note): with an oscillator bank, a copy whose periods are whole numbers
    of cycles in ``frames`` (the nearest, at least one), so a loop of that length closes them by
    itself; the note lists the periods moved. Without a bank, ``M`` itself and None."""
    if not getattr(M.cfg, "oscillators", 0):
        return M, None
    periods = M.osc_log_period.detach().cpu().double().exp()  # float64 on the host (MPS has none)
    cycles = (frames / periods).round().clamp(min=1)
    fitted = frames / cycles
    M = copy.deepcopy(M)
    with torch.no_grad():
        M.osc_log_period.copy_(fitted.log().to(M.osc_log_period))
    moved = [f"{p:.3g}->{f:.3g}" for p, f in zip(periods.tolist(), fitted.tolist(), strict=True) if abs(p - f) > 5e-4]
    if not moved:
        return M, None
    shown = ", ".join(moved[:6]) + (", ..." if len(moved) > 6 else "")
    return M, f"loop: oscillator periods fitted to whole cycles in {frames} frames ({shown})"


def _walk_points(M, w1, steps, generator, chunk):
    """(index, ws [V, s, w_dim]) chunks of the open walk from w1: points index + 1 .. index + s."""
    state, done = M.start(w1), 0
    while done < steps:
        s = min(chunk, steps - done)
        ws, _, _, state = M.unroll(state, s, generator=generator)
        yield done, ws
        done += s


def loop_chunks(
    M,
    w1: torch.Tensor,
    frames: int,
    interpolate: int = 1,
    generator: torch.Generator | None = None,
    chunk: int = CHUNK,
    crossfade: bool = True,
    keep_speed: bool = True,
) -> Iterator[torch.Tensor]:
    """The motion from ``w1`` [V, w_dim] closed into a loop of ``frames`` steps (the module
    docstring says how), in chunks [V, t, w_dim] like ``render.trajectory_chunks``: frames x
    ``interpolate`` frames in all, the first ``w1``; the frame after the last would be ``w1``
    again. ``generator`` (CPU) is read twice, from its state at the call. ``crossfade`` and
    ``keep_speed`` False leave out moves 1 and 3 (for comparisons: benchmarks/bench_loops.py)."""
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < LOOP_MIN_FRAMES:
        raise UsageError(f"a loop needs at least {LOOP_MIN_FRAMES} frames, got {frames!r}")
    n, lap = frames, overlap(frames) if crossfade else 0
    if generator is None:
        generator = torch.Generator().manual_seed(int(torch.randint(0, 2**62, ())))
    ahead = torch.Generator()
    ahead.set_state(generator.get_state())
    # pass 1: the open walk to n + lap; keep w_0 .. w_lap, w_n .. w_n+lap and the step energies
    basis = M.pca_components.to(w1)  # [k, w_dim]: the orthonormal principal directions the steps move along

    wide = torch.float32 if ops.device_kind(w1) == "mps" else torch.float64  # MPS has no float64

    def energy(x):  # [..., w_dim] -> [..., k]: squared coordinates along the directions
        return (x @ basis.T).to(wide).square()

    head, tail = [w1], []
    energy_rest = energy(w1).new_zeros(w1.shape[0], basis.shape[0])  # [V, k]: sum (d_t . v_k)^2, lap <= t < n
    prev = w1
    for done, ws in _walk_points(M, w1, n + lap, ahead, chunk):
        steps = energy(torch.cat([prev[:, None], ws], dim=1).diff(dim=1))  # [V, s, k]
        t = torch.arange(done, done + ws.shape[1], device=ws.device)
        energy_rest += steps[:, (t >= lap) & (t < n)].sum(dim=1)
        for i, index in enumerate(range(done + 1, done + 1 + ws.shape[1])):
            if index <= lap:
                head.append(ws[:, i])
            if index >= n:
                tail.append(ws[:, i])
        prev = ws[:, -1]
    head, tail = torch.stack(head, dim=1), torch.stack(tail, dim=1)  # [V, lap + 1, w_dim] each
    d_head, d_tail = head.diff(dim=1), tail.diff(dim=1)
    weight = ease("ease-in-out", torch.arange(lap, dtype=w1.dtype, device=w1.device) / max(lap, 1))
    blended = slerp(d_tail, d_head, weight[None, :, None])  # [V, lap, w_dim]: continuation -> beginning
    shift = torch.cat([torch.zeros_like(w1)[:, None], (blended - d_head).cumsum(dim=1)], dim=1)  # [V, lap + 1, w]
    gap = tail[:, 0] - w1 + shift[:, -1]  # where the crossfaded walk ends, from where it began
    walked = energy(blended).sum(dim=1) + energy_rest  # [V, k]: the crossfaded walk's step energy
    looped = walked - energy(gap) / n  # what the bridge leaves of it
    speed = (walked / looped.clamp_min(1e-30)).sqrt().clamp(max=MAX_SPEEDUP)
    speed = torch.where((walked > 0) & keep_speed, speed, torch.ones_like(speed)).to(w1.dtype)  # [V, k]

    def point(t: int, w: torch.Tensor) -> torch.Tensor:  # loop frame t from the walk's w_t
        moved = w + shift[:, min(t, lap)] - (t / n) * gap - w1  # [V, w_dim]
        return w1 + moved + ((moved @ basis.T) * (speed - 1)) @ basis

    # pass 2: the same walk again (the same noise), made into the loop's frames
    prev, first = w1, True
    for done, ws in _walk_points(M, w1, n - 1, generator, chunk):
        ys = torch.stack([point(done + 1 + i, ws[:, i]) for i in range(ws.shape[1])], dim=1)
        out = _in_betweens(prev, ys, interpolate)
        yield torch.cat([w1[:, None], out], dim=1) if first else out
        prev, first = ys[:, -1], False
    closing = _in_betweens(prev, w1[:, None], interpolate)[:, :-1]  # toward frame 0, without it
    if first:
        yield torch.cat([w1[:, None], closing], dim=1)
    elif closing.shape[1]:
        yield closing


def _in_betweens(prev: torch.Tensor, ys: torch.Tensor, k: int) -> torch.Tensor:
    """Points ``ys`` [V, s, w] after ``prev`` [V, w], each preceded by k - 1 linear in-betweens:
    [V, s k, w], the points themselves exact."""
    if k == 1:
        return ys
    a = torch.cat([prev[:, None], ys[:, :-1]], dim=1)[:, :, None]  # [V, s, 1, w]
    t = torch.arange(1, k, dtype=ys.dtype, device=ys.device)[None, None, :, None] / k
    between = a + (ys[:, :, None] - a) * t  # [V, s, k - 1, w]
    return torch.cat([between, ys[:, :, None]], dim=2).reshape(ys.shape[0], -1, ys.shape[-1])


# ----------------------------------------------------------------------------
# Keyframes


def parse_keys(keys) -> list:
    """Keyframes as given (a comma-separated string, or a list of strings, numbers, paths and
    ``Latent`` objects) -> a list of seeds (int), names or paths (str / PathLike) and Latents."""
    items = keys if isinstance(keys, (list, tuple)) else [keys]
    out = []
    for item in items:
        if isinstance(item, bool):
            raise UsageError(f"a keyframe is a seed, a latent or a photo, got {item!r}")
        if isinstance(item, str):
            parts = [p.strip() for p in item.split(",")]
            if not all(parts):
                raise UsageError(f"keyframes: an empty keyframe in {item!r}")
            out.extend(int(p) if p.isdigit() else p for p in parts)
        elif isinstance(item, (int, os.PathLike, Latent)):
            out.append(item)
        else:
            raise UsageError(f"a keyframe is a seed, a latent or a photo, got {type(item).__name__}")
    for k in out:
        if isinstance(k, int) and not 0 <= k <= SEED_MAX:
            raise UsageError(f"a keyframe seed must be in 0..{SEED_MAX}, got {k}")
    return out


@dataclass(kw_only=True)
class KeyframePath:
    """A path through keyframes (the module docstring says how it is made).

    ``keys``: seeds (numbers), latent names or files of ``mocohd invert``, ``Latent`` objects or
    photo files, in order (a string is split at commas); at least 2. ``path``: linear, slerp or
    spline; ``easing``: ``EASINGS``; ``seconds``: per segment, at the render's fps; ``space``:
    'z' (seeds only: the path runs through their z's, each frame mapped to w) or 'w';
    ``motion_weight`` >= 0: how much of the motion model's displacement rides on the path (0: the
    path alone). Built, it checks all this (UsageError, one line); ``read_keyframes`` reads the
    keyframes."""

    keys: list
    path: str = "spline"
    easing: str = "linear"
    seconds: float = 2.0
    space: str = "w"
    motion_weight: float = 0.0

    def __post_init__(self):
        self.keys = parse_keys(self.keys)
        check_choice("path", self.path, PATHS)
        check_choice("easing", self.easing, EASINGS)
        check_choice("space", self.space, SPACES)
        for name in ("seconds", "motion_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise UsageError(f"{name} must be a finite number, got {value!r}")
        if self.seconds <= 0:
            raise UsageError(f"seconds (per segment) must be > 0, got {self.seconds:g}")
        if self.motion_weight < 0:
            raise UsageError(f"motion_weight must be >= 0, got {self.motion_weight:g}")
        if self.space == "z" and not all(isinstance(k, int) for k in self.keys):
            other = next(k for k in self.keys if not isinstance(k, int))
            raise UsageError(
                f"a path in z runs through seeds only; keyframe {_label(other)} is a latent or a photo (w): "
                "use the space w"
            )
        if len(self.keys) < 2 and all(isinstance(k, int) for k in self.keys):
            raise UsageError(f"a keyframe path needs at least 2 keyframes, got {len(self.keys)}")

    def per_segment(self, fps: float) -> int:
        """Frames from one keyframe to the next at ``fps``: round(seconds x fps), at least 1."""
        n = round(self.seconds * fps)
        if n < 1:
            raise UsageError(
                f"{self.seconds:g} seconds at {fps:g} fps is no frame per segment: give at least {0.5 / fps:.3g} s"
            )
        return n

    def frames(self, count: int, fps: float, loop: bool = False) -> int:
        """Frames of the path through ``count`` keyframes: (count - 1) segments and the last keyframe,
        or, closed (``loop``), count segments (the frame after the last is the first)."""
        n = self.per_segment(fps) * (count if loop else count - 1) + (0 if loop else 1)
        if loop and self.motion_weight and n < LOOP_MIN_FRAMES:
            raise UsageError(f"a loop needs at least {LOOP_MIN_FRAMES} frames, the path has {n}: give more seconds")
        return n

    def track(self, G, keys: list, fps: float, loop: bool = False, invert: Callable | None = None) -> KeyframeTrack:
        """The path for image generator ``G`` through ``keys`` (``read_keyframes``): seeds drawn,
        latents checked against G, photos inverted by ``invert(path) -> Latent`` (MocohdError when
        it is None)."""
        if len(keys) < 2:
            raise UsageError(f"a keyframe path needs at least 2 keyframes, got {len(keys)}")
        device = next(G.parameters()).device
        points = []
        with torch.no_grad():
            for k in keys:
                if isinstance(k, int):
                    gen = torch.Generator().manual_seed(k)  # render's stream 0 of seed k
                    if self.space == "z":
                        points.append(torch.randn(1, G.z_dim, generator=gen)[0].to(device))
                    else:
                        points.append(draw_w1(G, 1, gen, device)[0])
                    continue
                if isinstance(k, Path):
                    if invert is None:
                        raise MocohdError(
                            f"keyframe {k}: a photo is inverted first: run `mocohd invert {k}`, then give "
                            f"the latent's name ({default_name(k)})"
                        )
                    k = invert(k)
                points.append(_latent_point(k, G).to(device))
        if any(p.ndim == 2 for p in points):  # a w+ keyframe: every keyframe gets one w per layer
            points = [p if p.ndim == 2 else p[None].expand(G.num_ws, -1) for p in points]
        center = None if self.space == "z" else G.mapping.w_avg.detach().to(device)
        return KeyframeTrack(
            torch.stack(points),
            self.per_segment(fps),
            loop,
            self.path,
            self.easing,
            self.space,
            float(self.motion_weight),
            G.mapping if self.space == "z" else None,
            center,
        )


def _label(key) -> str:
    if isinstance(key, Latent):
        return "(a Latent)"
    return repr(str(key))


def _latent_point(latent: Latent, G) -> torch.Tensor:
    """A one-latent ``Latent``'s point: [w_dim] (space w) or [num_ws, w_dim] (w+)."""
    if getattr(G, "c_dim", 0):
        raise MocohdError(
            "keyframes of a class-conditional generator (BigGAN) are seeds: a latent brings a class mix "
            "that a path does not interpolate"
        )
    try:
        check_latent(latent, G)
    except MocohdError as e:
        raise MocohdError(f"keyframe: {e}".replace("the start latent", "the latent")) from None
    return latent.ws[0, 0] if latent.space == "w" else latent.ws[0]


def _one(latent: Latent, i: int) -> Latent:
    """Latent i of a ``Latent`` of several, as one."""
    pick = slice(i, i + 1)
    return Latent(
        latent.ws[pick],
        None if latent.noise is None else [m[pick] for m in latent.noise],
        latent.space,
        dict(latent.image),
        latent.photos[pick],
        latent.distance[pick],
        dict(latent.info),
        generator=latent.generator,
        resolution=latent.resolution,
        classes=None if latent.classes is None else latent.classes[pick],
    )


def read_keyframes(path: KeyframePath | None) -> list:
    """The keyframes of ``path`` read before any model is loaded: seeds (int), ``Latent`` objects
    (one per latent: a file of several gives each in turn) and photo files (``Path``, checked
    readable: they are inverted once the generator is loaded). [] for None. A keyframe that is
    none of these, or fewer than 2 in all, is a UsageError (one line)."""
    if path is None:
        return []
    if not isinstance(path, KeyframePath):
        raise UsageError(f"keyframes must be a KeyframePath, got {type(path).__name__}")
    out = []
    for key in path.keys:
        if isinstance(key, int):
            out.append(key)
            continue
        if not isinstance(key, Latent):
            key = _read_key(key)
        if isinstance(key, Path):
            out.append(key)
        else:
            out.extend(_one(key, i) for i in range(key.count))
    if len(out) < 2:
        raise UsageError(f"a keyframe path needs at least 2 keyframes, got {len(out)}")
    return out


def _read_key(key: str | os.PathLike) -> Latent | Path:
    p = Path(key).expanduser()
    try:
        if p.is_file() and sniff(p) != "safetensors":
            read_frame(p)  # a photo: it must decode whole (one-line errors)
            return p
        return load_latent(key)
    except MocohdError as e:
        raise UsageError(
            f"keyframe {str(key)!r} is not a seed (a whole number), a latent (`mocohd invert` makes them) "
            f"or a readable photo: {e}"
        ) from None


def check_keyframe_photos(keys: list, invert_options: dict | None, image) -> None:
    """MocohdError before any work when a photo keyframe would need VGG16 (the perceptual loss of
    ``invert``) and the store has none."""
    photos = [k for k in keys if isinstance(k, Path)]
    if photos:
        check_photos_invertible(photos, invert_options, image, "keyframe", "give its latent, {name}, as the keyframe")


def check_photos_invertible(photos: list, invert_options: dict | None, image, what: str, then: str) -> None:
    """MocohdError before any work when ``photos`` (given as ``what``) would be inverted with the
    perceptual loss and the store has no VGG16; ``then`` says how to use the photo's latent
    instead (``{name}``: the latent's default name)."""
    if photos and (invert_options or {}).get("loss", "perceptual") == "perceptual" and not have_vgg16():
        raise MocohdError(
            f"{what} {photos[0]}: a photo is inverted first, with the perceptual loss, which needs VGG16 "
            f"weights (not in the store): run `mocohd fetch vgg16`, or invert it with the pixel loss "
            f"first: `mocohd invert {photos[0]} --image {image} --loss pixel`, then "
            + then.format(name=default_name(photos[0]))
        )


@dataclass
class KeyframeTrack:
    """A keyframe path made for one generator (``KeyframePath.track``): frame t -> its w."""

    points: torch.Tensor  # [K, D] (z or w) or [K, num_ws, w_dim] (w+): the keyframes in ``space``
    per_segment: int  # frames from one keyframe to the next
    closed: bool  # the path goes on from the last keyframe back to the first
    path: str = "spline"
    easing: str = "linear"
    space: str = "w"
    motion_weight: float = 0.0
    mapping: Callable | None = None  # space z: z -> w
    center: torch.Tensor | None = None  # slerp turns about it (None: the origin)

    @property
    def count(self) -> int:
        return int(self.points.shape[0])

    @property
    def frames(self) -> int:
        segments = self.count if self.closed else self.count - 1
        return segments * self.per_segment + (0 if self.closed else 1)

    @property
    def keyframe_frames(self) -> list[int]:
        """The frame each keyframe lands on."""
        return [k * self.per_segment for k in range(self.count)]

    def latents(self, t: torch.Tensor) -> torch.Tensor:
        """The path at frames ``t`` [n] (integers in 0..frames - 1) in its space: [n, *points.shape[1:]]."""
        P, K, F = self.points, self.count, self.per_segment
        t = torch.as_tensor(t, device=P.device).long()
        if t.ndim != 1 or (t.numel() and (int(t.min()) < 0 or int(t.max()) >= self.frames)):
            raise UsageError(f"frames must be a list of frame numbers in 0..{self.frames - 1}")
        seg = t // F
        u = ease(self.easing, (t % F).to(P.dtype) / F).reshape(-1, *([1] * (P.ndim - 1)))
        if self.closed:
            i0, i1 = seg % K, (seg + 1) % K
        else:
            i0, i1 = seg.clamp(max=K - 1), (seg + 1).clamp(max=K - 1)
        a, b = P[i0], P[i1]
        if self.path == "linear":
            out = torch.lerp(a, b, u)
        elif self.path == "slerp":
            out = slerp(a, b, u, self.center)
        elif self.closed:
            out = catmull_rom(P[(i0 - 1) % K], a, b, P[(i1 + 1) % K], u)
        else:  # the ends continue straight: phantom keyframes 2 P_0 - P_1 and 2 P_K-1 - P_K-2
            ends = torch.cat([2 * P[:1] - P[1:2], P, 2 * P[-1:] - P[-2:-1]])
            out = catmull_rom(ends[i0], a, b, ends[(i1 + 2).clamp(max=K + 1)], u)
        return torch.where(u == 0, a, out)  # on a keyframe's frame: the keyframe itself

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        """The w's of frames ``t`` [n]: [n, w_dim], or [n, num_ws, w_dim] for a path through w+."""
        x = self.latents(t)
        return self.mapping(x) if self.mapping is not None else x

    def first(self) -> torch.Tensor:
        """Frame 0's w [w_dim] (w+: the layers' mean), where a motion riding on the path starts."""
        w = self(torch.zeros(1, dtype=torch.long))[0]
        return w.mean(dim=0) if w.ndim == 2 else w


# ----------------------------------------------------------------------------
# What render calls


def check_options(frames, interpolate, loop, keyframes, start=None, class_to=None, camera_moves=False):
    """A render's settings that contradict a loop or a keyframe path (UsageError, one line);
    returns ``keyframes`` (a ``KeyframePath``, its keys, or None) as a ``KeyframePath`` or None."""
    if keyframes is not None:
        if isinstance(keyframes, KeyframeTrack):
            raise UsageError("RenderConfig takes a KeyframePath (render_frames takes a track made from one)")
        if not isinstance(keyframes, KeyframePath):
            keyframes = KeyframePath(keys=keyframes)
        _check_path(interpolate, start)
    if loop:
        _check_loop(frames, keyframes is not None, class_to, camera_moves)
    return keyframes


def check_track(track, frames, interpolate, loop, start=None, class_to=None, camera_moves=False) -> None:
    """``render_frames``'s check of a loop and a ``KeyframeTrack`` (UsageError, one line)."""
    if track is not None:
        if not isinstance(track, KeyframeTrack):
            raise UsageError(
                "track must be a KeyframeTrack: KeyframePath.track(G, read_keyframes(path), fps) makes one"
            )
        _check_path(interpolate, start)
        if track.closed != bool(loop):
            raise UsageError("the keyframe track is closed but the render is not a loop, or the other way round")
        if frames != track.frames:
            raise UsageError(f"frames must be the keyframe track's frames, {track.frames}, got {frames}")
    if loop:
        _check_loop(frames, track is not None, class_to, camera_moves)


def _check_path(interpolate, start) -> None:
    if start:
        raise UsageError(
            "keyframes and start contradict each other: the first keyframe is where the video starts "
            "(give the start latent as the first keyframe)"
        )
    if interpolate != 1:
        raise UsageError("interpolate does not apply to a keyframe path: every frame is on it (more: seconds)")


def _check_loop(frames, on_path, class_to, camera_moves) -> None:
    if class_to is not None:
        raise UsageError("a loop cannot morph the class to class_to: its last frame would not flow into its first")
    if camera_moves:
        raise UsageError("a camera track (rotate, translate, shake) does not loop: leave it out of a loop")
    if not on_path and frames < LOOP_MIN_FRAMES:  # a path's length is checked with its seconds
        raise UsageError(f"a loop needs at least {LOOP_MIN_FRAMES} frames, got {frames}")


def walk(M, w1, frames, interpolate, generator, open_walk, loop=False, track=None) -> Iterator[torch.Tensor]:
    """The w's of a render's frames in chunks [V, t, w_dim] (w+ track: [V, t, num_ws, w_dim]): the
    motion from ``w1`` [V, w_dim] (``open_walk``, render's ``trajectory_chunks``, or
    ``loop_chunks``), or the keyframe ``track`` with the motion's displacement times its
    ``motion_weight`` on top."""

    def motion(k):
        if loop:
            return loop_chunks(M, w1, frames, k, generator)
        return open_walk(M, w1, frames, k, generator=generator)

    if track is None:
        return motion(interpolate)
    return _ride(track, motion(1) if track.motion_weight else None, w1)


def _ride(track: KeyframeTrack, motion, w1) -> Iterator[torch.Tensor]:
    videos, done = w1.shape[0], 0
    chunks = motion if motion is not None else (None for _ in range(0, track.frames, CHUNK))
    for m in chunks:
        n = m.shape[1] if m is not None else min(CHUNK, track.frames - done)
        p = track(torch.arange(done, done + n, device=w1.device)).to(w1.dtype)  # [n, ...]
        p = p[None].expand(videos, *p.shape)
        if m is not None:
            shift = track.motion_weight * (m - w1[:, None])  # [V, n, w_dim]
            p = p + (shift[:, :, None] if p.ndim == 4 else shift)
        done += n
        yield p
