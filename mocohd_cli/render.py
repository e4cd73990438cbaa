"""Rendering: motion x image generator -> frames -> video files (SPEC section 6).

    for frame in render_frames(M, G, frames=64, videos=2, seed=0):   # [videos, H, W, 3] uint8
        ...
    render("out.mp4", motion="demo", image="demo", frames=64)

Frames are produced time step by time step: the LSTM is unrolled chunk by
chunk and each chunk is synthesised and handed to the writers, so memory
does not depend on the number of frames. Writers (``video.py``) run in their
own thread (and ffmpeg in its own process), so encoding overlaps generation.
Files are written under a temporary name and renamed when complete and
checked; ``video.py`` states what happens to existing outputs.

Arguments are checked before any model is loaded: numbers out of range raise
``UsageError`` (a ``ValueError``), outputs that cannot be written ``MocohdError``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch

from .errors import MocohdError, UsageError
from .generators import synthesis_kwargs
from .generators.biggan import one_hot
from .video import (FORMATS, VideoWriter, check_fps, check_frame_budget, check_output, check_videos, grid_shape,  # noqa: F401
                    output_format, output_paths, sweep_stale, tile, whole, write_videos)

NOISE_MODES = ("fixed", "random", "off")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
SEED_STREAMS = 40  # _generator shifts stream k by k << 40: seeds below 2**40 never share a stream
MAX_SEED = (1 << SEED_STREAMS) - 1


def _generator(seed: int, stream: int) -> torch.Generator:
    """Independent CPU random streams of one seed: latents, motion noise, image noise."""
    return torch.Generator().manual_seed(int(seed) + (stream << SEED_STREAMS))


def to_uint8(img: torch.Tensor) -> torch.Tensor:  # [B, 3, H, W] in [-1, 1] -> [B, H, W, 3] uint8
    return ((img.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)


def trajectory_chunks(M, w1: torch.Tensor, frames: int, interpolate: int = 1, chunk: int = 16,
                      generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
    """The motion trajectory from w1 [V, w_dim], in chunks [V, t, w_dim]; with
    ``interpolate`` K, K - 1 latent in-between frames between consecutive steps
    ((frames - 1) * K + 1 frames in all)."""
    state = M.start(w1)
    prev = w1
    yield w1[:, None]
    done = 1
    while done < frames:
        steps = min(chunk, frames - done)
        ws, _, _, state = M.unroll(state, steps, generator=generator)
        if interpolate > 1:
            keyframes = torch.cat([prev[:, None], ws], dim=1)  # [V, steps + 1, w]
            t = torch.arange(1, interpolate + 1, device=ws.device, dtype=ws.dtype) / interpolate  # (0, 1]
            a, b = keyframes[:, :-1, None], keyframes[:, 1:, None]
            ws = (a + (b - a) * t[None, None, :, None]).reshape(ws.shape[0], steps * interpolate, -1)
        prev = state.w
        done += steps
        yield ws


def video_classes(G, videos: int, seed: int = 0, classes: list[int] | None = None) -> list[int]:
    """The class of each video: ``classes`` in turn, or drawn from the seed (its own stream)."""
    if classes:
        for k in classes:
            if not 0 <= k < G.c_dim:
                raise MocohdError(f"class {k} is out of range: this generator has classes 0..{G.c_dim - 1}")
        return [classes[v % len(classes)] for v in range(videos)]
    return torch.randint(G.c_dim, (videos,), generator=_generator(seed, 3)).tolist()


def check_numbers(frames, videos, seed, truncation, interpolate, batch) -> tuple[int, int, int, float, int, int]:
    """The numeric arguments of a render, checked (UsageError, one line, naming the argument)."""
    frames = whole("frames", frames)
    videos = whole("videos", videos)
    seed = whole("seed", seed, 0, MAX_SEED)
    interpolate = whole("interpolate", interpolate)
    batch = whole("batch", batch)
    try:
        psi = float(truncation)
    except (TypeError, ValueError):
        raise UsageError(f"truncation must be a number, got {truncation!r}") from None
    if not math.isfinite(psi) or psi < 0:
        raise UsageError(f"truncation must be a finite number >= 0 (1: none, < 1 toward the average, > 1 away from it), "
                         f"got {truncation}")
    return frames, videos, seed, psi, interpolate, batch


def render_frames(M, G, frames: int, videos: int = 1, seed: int = 0, truncation: float = 1.0, noise: str = "fixed",
                  interpolate: int = 1, batch: int = 8, dtype: torch.dtype | None = None,
                  classes: list[int] | None = None, class_to: int | None = None) -> Iterator[torch.Tensor]:
    """Yield the videos' frames one time step at a time: [videos, H, W, 3] uint8 (CPU).

    ``M`` is moved to G's device. Same seed, same frames (on the same machine and device). ``noise``:
    'fixed' (per-layer noise drawn once per video, shared by its frames),
    'random' (drawn for every frame) or 'off'.

    Class-conditional generators (BigGAN): video v shows class ``classes[v % len(classes)]``
    (``video_classes`` draws them when None); with ``class_to`` the class vector moves
    linearly from that class to ``class_to`` over the video.

    The arguments are checked when it is called (UsageError): frames, videos, interpolate and
    batch >= 1, seed in 0..2**40 - 1, truncation finite and >= 0 (BigGAN: in (0, 1]), and
    videos x resolution^2 at most ``video.MAX_STEP_PIXELS``.
    """
    if noise not in NOISE_MODES:
        raise UsageError(f"noise must be one of {', '.join(NOISE_MODES)}, got {noise!r}")
    frames, videos, seed, truncation, interpolate, batch = check_numbers(frames, videos, seed, truncation,
                                                                         interpolate, batch)
    check_frame_budget(videos, G.resolution, G.resolution, grid=False)
    if G.c_dim and not 0 < truncation <= 1:
        raise UsageError(f"truncation must be in (0, 1] for {G.family} (its stored batch-norm statistics), got {truncation}")
    if M.cfg.w_dim != G.w_dim:
        raise MocohdError(f"the motion model moves in a {M.cfg.w_dim}-d latent space, the image generator's w is {G.w_dim}-d")
    labels = None
    if G.c_dim:
        labels = video_classes(G, videos, seed, classes)
    elif classes or class_to is not None:
        raise MocohdError(f"--class is for class-conditional generators (BigGAN); this {G.family} generator is unconditional")
    return _frames(M, G, frames, videos, seed, truncation, noise, interpolate, batch, dtype, labels, class_to)


def _frames(M, G, frames, videos, seed, truncation, noise, interpolate, batch, dtype, labels, class_to):
    device = next(G.parameters()).device
    M = M.to(device)
    z_gen, eps_gen, noise_gen = _generator(seed, 0), _generator(seed, 1), _generator(seed, 2)
    total = (frames - 1) * interpolate + 1
    start = end = None
    if labels is not None:
        start = one_hot(labels, G.c_dim, device)  # [videos, c_dim]
        end = start if class_to is None else one_hot([class_to], G.c_dim, device).expand_as(start)
    done = 0
    with torch.no_grad():
        w1 = G.mapping(torch.randn(videos, G.z_dim, generator=z_gen).to(device))
        fixed = G.synthesis.make_noise(videos, generator=noise_gen, device=device) if noise == "fixed" else None
        w_avg = G.mapping.w_avg
        for ws in trajectory_chunks(M, w1, frames, interpolate, generator=eps_gen):
            if truncation != 1:
                ws = w_avg.lerp(ws, truncation)
            steps = ws.shape[1]
            flat = ws.transpose(0, 1).reshape(steps * videos, -1)  # time-major: frame t of every video
            video_of = torch.arange(videos, device=device).repeat(steps)
            if start is not None:  # class vectors, frame by frame: [steps * videos, c_dim]
                alpha = (torch.arange(done, done + steps, device=device, dtype=torch.float32) / max(total - 1, 1))
                cs = torch.lerp(start[None], end[None], alpha[:, None, None]).reshape(steps * videos, -1)
            done += steps
            images = []
            for i in range(0, flat.shape[0], batch):
                sel = video_of[i : i + batch]
                if noise == "fixed":
                    maps = [n[sel] for n in fixed]
                elif noise == "random":  # drawn frame by frame: the same frames whatever the batch
                    per_frame = [G.synthesis.make_noise(1, generator=noise_gen, device=device) for _ in range(len(sel))]
                    maps = [torch.cat(layer) for layer in zip(*per_frame)]
                else:
                    maps = [None] * len(fixed or G.synthesis.layers())
                cond = synthesis_kwargs(G, cs[i : i + batch], truncation) if start is not None else {}
                images.append(to_uint8(G.synthesis(flat[i : i + batch], noise=maps, dtype=dtype, **cond)).cpu())
            images = torch.cat(images).reshape(steps, videos, *images[0].shape[1:])
            yield from images


@dataclass
class RenderResult:
    paths: list[Path]
    frames: int  # frames per video, as written
    size: tuple[int, int]  # (height, width) of each written frame
    cross_domain: str | None = None  # what was re-expressed, if anything


def render(
    out: str | os.PathLike,
    motion: str = "demo",
    image: str = "demo",
    frames: int = 32,
    videos: int = 1,
    grid: bool = False,
    seed: int = 0,
    fps: float = 12.0,
    truncation: float = 1.0,
    noise: str = "fixed",
    interpolate: int = 1,
    device: str = "auto",
    dtype: str = "fp32",
    batch: int = 8,
    fmt: str | None = None,
    on_start: Callable[[int, str | None], None] | None = None,
    on_frame: Callable[[int], None] | None = None,
    classes: list[str | int] | None = None,
    class_to: str | int | None = None,
) -> RenderResult:
    """Render ``videos`` videos of ``frames`` motion steps with a motion model and an image generator.

    If the motion model was trained with another image generator, its steps
    are re-expressed in this generator's PCA basis (computed and cached on
    first use). ``on_start(total_frames, note)`` and ``on_frame(frames_done)``
    report progress (frames of all videos together).

    ``classes`` (numbers or ImageNet names) and ``class_to`` are for class-conditional
    generators (BigGAN); without ``classes``, the classes the motion model was trained
    on with this generator, else classes drawn from the seed.
    """
    from .models import load_image_generator
    from .motion import load_motion
    from .pca import pca_for

    out = Path(out)
    fmt = output_format(out, fmt)
    frames, videos, seed, truncation, interpolate, batch = check_numbers(frames, videos, seed, truncation,
                                                                         interpolate, batch)
    fps = check_fps(fmt, fps)
    videos = check_videos(videos, grid)
    if noise not in NOISE_MODES:
        raise UsageError(f"noise must be one of {', '.join(NOISE_MODES)}, got {noise!r}")
    if dtype not in DTYPES:
        raise UsageError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    for path in output_paths(out, videos, grid):  # before loading anything: fail fast
        check_output(path, fmt)
    G = load_image_generator(image, device=device)
    check_frame_budget(videos, G.resolution, G.resolution, grid)
    M = load_motion(motion, device=next(G.parameters()).device)
    if M.cfg.w_dim != G.w_dim:
        raise MocohdError(f"motion '{motion}' moves in a {M.cfg.w_dim}-d latent space but '{image}' has a {G.w_dim}-d w: "
                          "they cannot be combined")
    note = None
    source_sha = M.image.get("image_sha256")
    if source_sha and source_sha != G.identity["weights_sha256"]:
        basis, _, _ = pca_for(image, G=G)
        M = M.retarget(basis.components, basis.stdev)
        note = (f"cross-domain: motion trained with '{M.image.get('image_name', '?')}' re-expressed in the PCA basis "
                f"of '{G.identity['name']}' (direction k -> direction k, scaled by its stdev)")
    labels, label_to = None, None
    if G.c_dim:
        from .generators.biggan import describe_class, parse_class, parse_classes

        if not 0 < truncation <= 1:
            raise UsageError(f"truncation must be in (0, 1] for {G.family} (its stored batch-norm statistics), got {truncation}")
        labels = parse_classes(classes, G.c_dim) or None
        label_to = parse_class(class_to, G.c_dim) if class_to is not None else None
        if labels is None and M.source.get("classes") and source_sha == G.identity["weights_sha256"]:
            labels = [int(k) for k in M.source["classes"]]
        shown = sorted(set(video_classes(G, videos, seed, labels)))
        line = "class " + ", ".join(describe_class(k, G.c_dim) for k in shown[:8]) + (", ..." if len(shown) > 8 else "")
        if label_to is not None:
            line += f" -> {describe_class(label_to, G.c_dim)}"
        note = f"{note}\n{line}" if note else line
    elif classes or class_to is not None:
        raise MocohdError(f"--class is for class-conditional generators (BigGAN); '{image}' is unconditional")
    total = (frames - 1) * interpolate + 1
    if on_start:
        on_start(total * videos, note)
    stream = render_frames(M, G, frames, videos, seed, truncation, noise, interpolate, batch, DTYPES[dtype],
                           classes=labels, class_to=label_to)
    paths, count, size = write_videos(stream, out, fmt, fps, videos, grid, on_frame and (lambda n: on_frame(n * videos)))
    return RenderResult(paths, count, size, note)
