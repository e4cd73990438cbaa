"""Rendering: motion x image generator -> frames -> video files (SPEC section 6).

    for frame in render_frames(M, G, frames=64, videos=2, seed=0):   # [videos, H, W, 3] uint8
        ...
    render("out.mp4", motion="demo", image="demo", frames=64)

Frames are produced time step by time step: the LSTM is unrolled chunk by
chunk and each chunk is synthesised and handed to the writers, so memory
does not depend on the number of frames. Writers run in their own thread
(and ffmpeg in its own process), so encoding overlaps generation. Files are
written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import os
import queue
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from .errors import MocohdError
from .generators import synthesis_kwargs
from .generators.biggan import one_hot

NOISE_MODES = ("fixed", "random", "off")
FORMATS = ("mp4", "webm", "gif", "png")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _generator(seed: int, stream: int) -> torch.Generator:
    """Independent CPU random streams of one seed: latents, motion noise, image noise."""
    return torch.Generator().manual_seed(int(seed) + (stream << 40))


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
    """
    if noise not in NOISE_MODES:
        raise MocohdError(f"--noise must be one of {', '.join(NOISE_MODES)}")
    if frames < 1 or videos < 1 or batch < 1 or interpolate < 1:
        raise MocohdError("frames, videos, batch and interpolate must be positive")
    if M.cfg.w_dim != G.w_dim:
        raise MocohdError(f"the motion model moves in a {M.cfg.w_dim}-d latent space, the image generator's w is {G.w_dim}-d")
    device = next(G.parameters()).device
    M = M.to(device)
    z_gen, eps_gen, noise_gen = _generator(seed, 0), _generator(seed, 1), _generator(seed, 2)
    total = (frames - 1) * interpolate + 1
    start = end = None
    if G.c_dim:
        labels = video_classes(G, videos, seed, classes)
        start = one_hot(labels, G.c_dim, device)  # [videos, c_dim]
        end = start if class_to is None else one_hot([class_to], G.c_dim, device).expand_as(start)
    elif classes or class_to is not None:
        raise MocohdError(f"--class is for class-conditional generators (BigGAN); this {G.family} generator is unconditional")
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


# ----------------------------------------------------------------------------
# Writers.


def grid_shape(n: int) -> tuple[int, int]:
    """Rows and columns of a near-square grid for n tiles."""
    cols = int(np.ceil(np.sqrt(n)))
    return int(np.ceil(n / cols)), cols


def tile(frame: np.ndarray) -> np.ndarray:  # [V, H, W, 3] -> [rows * H, cols * W, 3]
    v, h, w, c = frame.shape
    rows, cols = grid_shape(v)
    canvas = np.zeros((rows * h, cols * w, c), np.uint8)
    for i in range(v):
        r, k = divmod(i, cols)
        canvas[r * h : (r + 1) * h, k * w : (k + 1) * w] = frame[i]
    return canvas


class VideoWriter:
    """One output (video file or PNG folder), written to a temporary name and
    renamed into place by ``close``; ``abort`` removes it."""

    def __init__(self, path: Path, fmt: str, fps: float, size: tuple[int, int]):
        self.path, self.fmt, self.size = path, fmt, size
        self.tmp = path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")
        self.count = 0
        self._ffmpeg = None
        h, w = size
        # yuv420p needs even sizes: pad odd ones by one replicated row/column
        self._pad = (h % 2, w % 2) if fmt in ("mp4", "webm") else (0, 0)
        if fmt == "png":
            self.tmp.mkdir(parents=True, exist_ok=False)
            return
        import imageio_ffmpeg

        out_h, out_w = h + self._pad[0], w + self._pad[1]
        if fmt == "mp4":
            kw = dict(codec="libx264", pix_fmt_out="yuv420p", output_params=["-movflags", "+faststart"])
        elif fmt == "webm":
            kw = dict(codec="libvpx-vp9", pix_fmt_out="yuv420p", output_params=["-b:v", "0", "-crf", "32"])
        else:  # gif with a palette made for the whole clip
            kw = dict(codec="gif", pix_fmt_out="pal8",
                      output_params=["-filter_complex", "split[a][b];[a]palettegen[p];[b][p]paletteuse", "-loop", "0"])
        self._ffmpeg = imageio_ffmpeg.write_frames(str(self.tmp), (out_w, out_h), fps=fps, macro_block_size=1,
                                                   ffmpeg_log_level="error", **kw)
        self._ffmpeg.send(None)

    def write(self, frame: np.ndarray) -> None:  # [H, W, 3] uint8
        if self.fmt == "png":
            import imageio.v3 as iio

            iio.imwrite(self.tmp / f"{self.count:06d}.png", frame)
        else:
            if any(self._pad):
                frame = np.pad(frame, ((0, self._pad[0]), (0, self._pad[1]), (0, 0)), mode="edge")
            self._ffmpeg.send(np.ascontiguousarray(frame))
        self.count += 1

    def close(self) -> None:
        if self._ffmpeg is not None:
            self._ffmpeg.close()
        if self.path.exists() and self.fmt == "png":
            shutil.rmtree(self.path)
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        try:
            if self._ffmpeg is not None:
                self._ffmpeg.close()
        except Exception:  # noqa: BLE001 - ffmpeg may already be gone
            pass
        if self.tmp.is_dir():
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            self.tmp.unlink(missing_ok=True)


def output_format(path: Path, fmt: str | None) -> str:
    if fmt is None:
        suffix = path.suffix.lower().lstrip(".")
        fmt = suffix if suffix in FORMATS else ("png" if suffix == "" else None)
        if fmt is None:
            raise MocohdError(f"cannot tell the format from '{path.name}': use .mp4, .webm, .gif, a folder name, or --format")
    if fmt not in FORMATS:
        raise MocohdError(f"--format must be one of {', '.join(FORMATS)}")
    return fmt


def output_paths(out: Path, videos: int, grid: bool) -> list[Path]:
    if videos == 1 or grid:
        return [out]
    return [out.with_name(f"{out.stem}_{i:03d}{out.suffix}") for i in range(videos)]


@dataclass
class RenderResult:
    paths: list[Path]
    frames: int  # frames per video, as written
    size: tuple[int, int]  # (height, width) of each written frame
    cross_domain: str | None = None  # what was re-expressed, if anything


def write_videos(frames: Iterator[torch.Tensor], out: Path, fmt: str, fps: float, videos: int, grid: bool,
                 on_frame: Callable[[int], None] | None = None) -> tuple[list[Path], int, tuple[int, int]]:
    """Consume [V, H, W, 3] frames and write them, encoding in a separate thread."""
    paths = output_paths(out, videos, grid)
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
    q: queue.Queue = queue.Queue(maxsize=8)
    writers: list[VideoWriter] = []
    failure: list[BaseException] = []

    def encode():
        try:
            while (item := q.get()) is not None:
                if not writers:
                    h, w = item.shape[1:3] if not grid else tile(item).shape[:2]
                    writers.extend(VideoWriter(p, fmt, fps, (h, w)) for p in paths)
                if grid:
                    writers[0].write(tile(item))
                else:
                    for wr, f in zip(writers, item):
                        wr.write(f)
        except BaseException as e:  # noqa: BLE001 - reported to the producer
            failure.append(e)
            while q.get() is not None:  # drain so the producer never blocks
                pass

    thread = threading.Thread(target=encode, name="mocohd-encoder", daemon=True)
    thread.start()
    count = 0
    ok = False
    try:
        for frame in frames:
            if failure:
                break
            q.put(frame.numpy())
            count += 1
            if on_frame:
                on_frame(count)
        q.put(None)
        thread.join()
        if failure:
            raise failure[0]
        for wr in writers:
            wr.close()
        ok = True
    finally:
        if not ok:
            if thread.is_alive():
                q.put(None)
                thread.join(timeout=30)
            for wr in writers:
                wr.abort()
    return paths, count, writers[0].size if writers else (0, 0)


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
    if dtype not in DTYPES:
        raise MocohdError(f"--dtype must be one of {', '.join(DTYPES)}")
    G = load_image_generator(image, device=device)
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
            raise MocohdError(f"--truncation must be in (0, 1] for {G.family} (its stored batch-norm statistics), got {truncation}")
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
