"""Rendering: motion x image generator -> frames -> video files (MoCoGAN-HD, ICLR 2021: a motion
model walks the latent space of a frozen image generator, one frame per step).

    for frame in render_frames(M, G, frames=64, videos=2, seed=0):   # [videos, H, W, 3] uint8
        ...
    render("out.mp4", RenderConfig(motion="demo", image="demo", frames=64))

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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from . import paths, store
from .audio import (
    AudioDrive,
    audio_drive,
    audio_features,
    check_audio_options,
    frame_count as audio_frame_count,
    mux_args,
    read_audio,
)
from .classes import describe_class
from .edits import Edit, LatentEdit, check_edit_options, resolve_edits
from .errors import MocohdError, UsageError
from .formats import canonical, sniff
from .frames import (
    VideoNoise,
    check_noise,
    check_pair,
    check_size,
    check_truncation,
    class_vectors,
    draw_classes,
    draw_w1,
    synthesize,
)
from .generators.stylegan3 import MAX_CAMERA_SHIFT, camera_matrix
from .invert import invert, photo_targets, record_crop
from .loaders import load_image_generator
from .loaders.latents import Latent, check_latent, concat_latents, default_name, load_latent, save_latent
from .loaders.motion_models import load_motion
from .loaders.pca_bases import express
from .runtime import check_deterministic, check_dtype_supported, deterministic_process, precision
from .stopping import Cancelled
from .video import (
    check_fps,
    check_frame_budget,
    check_output,
    check_videos,
    output_format,
    output_paths,
    tile,  # noqa: F401 - re-exported: examples/make_demo.py and the tests call render.tile
    whole,
    write_videos,
)

AUDIO_LOOP = "--audio does not loop: the music's last frame does not flow into its first (leave out --loop)"
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
DEFAULT_FRAMES = 32  # motion steps per video when neither frames nor audio say
SEED_STREAMS = 40  # _generator shifts stream k by k << 40: seeds below 2**40 never share a stream
MAX_SEED = (1 << SEED_STREAMS) - 1


def _generator(seed: int, stream: int) -> torch.Generator:
    """Independent CPU random streams of one seed: latents, motion noise, image noise."""
    return torch.Generator().manual_seed(int(seed) + (stream << SEED_STREAMS))


def to_uint8(img: torch.Tensor) -> torch.Tensor:  # [B, 3, H, W] in [-1, 1] -> [B, H, W, 3] uint8
    return ((img.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)


def trajectory_chunks(
    M, w1: torch.Tensor, frames: int, interpolate: int = 1, chunk: int = 16, generator: torch.Generator | None = None
) -> Iterator[torch.Tensor]:
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


def video_classes(G, videos: int, seed: int = 0, classes: list[int | str] | None = None) -> list[int]:
    """The class of each video: ``classes`` (numbers or ImageNet names) in turn, or drawn from
    the seed (its own stream)."""
    classes = check_pair(None, G, classes)
    if classes:
        return [classes[v % len(classes)] for v in range(videos)]
    return draw_classes(G, videos, _generator(seed, 3)).tolist()


def check_numbers(frames, videos, seed, truncation, interpolate, batch) -> tuple[int, int, int, float, int, int]:
    """The numeric arguments of a render, checked (UsageError, one line, naming the argument)."""
    frames = whole("frames", frames)
    videos = whole("videos", videos)
    seed = whole("seed", seed, 0, MAX_SEED)
    interpolate = whole("interpolate", interpolate)
    batch = whole("batch", batch)
    return frames, videos, seed, check_truncation(truncation), interpolate, batch


def render_frames(
    M,
    G,
    frames: int,
    videos: int = 1,
    seed: int = 0,
    truncation: float = 1.0,
    noise: str = "fixed",
    interpolate: int = 1,
    batch: int = 8,
    dtype: torch.dtype | None = None,
    classes: list[int] | None = None,
    class_to: int | None = None,
    start: Latent | None = None,
    camera: Camera | None = None,
    edit: LatentEdit | None = None,
    loop: bool = False,
    track: paths.KeyframeTrack | None = None,
    audio: AudioDrive | None = None,
    size: int | None = None,
) -> Iterator[torch.Tensor]:
    """Yield the videos' frames one time step at a time: [videos, H, W, 3] uint8 (CPU).

    ``M`` is moved to G's device. Same seed, same frames (on the same machine and device). ``noise``:
    'fixed' (per-layer noise drawn once per video, shared by its frames),
    'random' (drawn for every frame) or 'off' (``frames.VideoNoise``).

    Class-conditional generators (BigGAN): video v shows class ``classes[v % len(classes)]``
    (numbers or ImageNet names; ``video_classes`` draws them when None); with ``class_to`` the
    class vector moves linearly from that class to ``class_to`` over the video.

    The arguments are checked when it is called: frames, videos, interpolate and batch >= 1,
    seed in 0..2**40 - 1, truncation finite and >= 0, and videos x resolution^2 at most
    ``video.MAX_STEP_PIXELS`` (UsageError); the pair with ``frames.check_pair`` (w sizes,
    classes, BigGAN's truncation in (0, 1]).

    ``start`` (a ``Latent`` of G, from ``mocohd invert``): video v starts from its latent
    v % count, with its noise maps when it has them (BigGAN: with its class vector; ``classes`` must
    then be None), so frame 0 is the inverted image; in space 'w+' the motion's displacement from
    the layers' mean w is added to every layer's w.
    ``camera`` (StyleGAN3 only): a ``Camera`` track through the generator's input transform.
    ``edit`` (``edits.resolve_edits``): edits and a truncation cutoff, applied to every frame's w's.
    ``loop``: the last frame flows into the first (``paths.loop_chunks``); ``track``: the videos
    follow a keyframe path (``paths.KeyframePath.track``; ``frames`` is its ``frames``).
    ``audio`` (``audio.audio_drive``): the music scales each frame's motion step and moves its
    w's along the bands' directions (no loop).
    ``size``: frames of size x size pixels, a power of two up to G's resolution (``frames.synthesize``).
    """
    check_noise(noise)
    frames, videos, seed, truncation, interpolate, batch = check_numbers(
        frames, videos, seed, truncation, interpolate, batch
    )
    moves = camera is not None and camera.moves
    paths.check_track(track, frames, interpolate, loop, start, class_to, moves)
    size = check_size(size, G)
    check_frame_budget(videos, size or G.resolution, size or G.resolution, grid=False)
    labels = check_pair(M, G, classes, truncation)
    label_to = check_pair(None, G, [class_to], truncation)[0] if class_to is not None else None
    if start is not None:
        check_start(start, G, labels)
    if G.c_dim and start is not None:  # BigGAN: each video shows its start latent's class vector
        labels = start.classes[start.of_videos(videos)]
    else:
        labels = video_classes(G, videos, seed, labels) if G.c_dim else None
    camera = check_camera(camera, G, paths.frame_count(frames, interpolate, loop))
    if edit is not None:
        edit.check(G)
    if loop:
        if audio is not None:
            raise UsageError(AUDIO_LOOP)
        M = paths.fit_periods(M, frames)[0]
    return _frames(
        M,
        G,
        frames,
        videos,
        seed,
        truncation,
        noise,
        interpolate,
        batch,
        dtype,
        labels,
        label_to,
        start,
        camera,
        edit=edit,
        loop=loop,
        track=track,
        audio=audio,
        size=size,
    )


def read_starts(start) -> list:
    """``render``'s ``start`` as a list of ``Latent`` objects (names and latent files read now) and
    photo paths (inverted later, once the generator is loaded)."""
    specs = [] if start is None else [start] if isinstance(start, (str, os.PathLike, Latent)) else list(start)
    out = []
    for spec in specs:
        if isinstance(spec, Latent):
            out.append(spec)
        elif Path(spec).is_file() and sniff(spec) != "safetensors":
            out.append(Path(spec))  # a photo
        else:
            out.append(load_latent(spec))
    return out


def start_latent(
    starts: list, G, on_note: Callable[[str], None] | None = None, invert_options: dict | None = None
) -> Latent:
    """One ``Latent`` of every start, in order: photos are inverted with ``invert``'s defaults
    (aligned as FFHQ's when G depicts faces, as `mocohd invert` does: ``invert.photo_targets``) and
    their latents stored under the photo's name when no latent has it yet."""
    latents = []
    for s in starts:
        if isinstance(s, Latent):
            latents.append(s)
            continue
        if on_note:
            on_note(f"inverting {s.name} with '{G.identity['name']}' (mocohd invert's defaults) ...")
        photo = {"file": s.name, "sha256": canonical.file_sha256(s)}
        target, faces = photo_targets([s], G, on_note=on_note)
        latent = invert(G, target, photos=[photo], **(invert_options or {}))
        record_crop(latent, "center", faces)
        name = default_name(s)
        if not store.store_path("latent", name).exists():
            save_latent(latent, name)
            if on_note:
                on_note(f"stored its latent as '{name}' (render --start {name} reuses it)")
        latents.append(latent)
    return concat_latents(latents)


@dataclass(frozen=True)
class Camera:
    """A camera track for StyleGAN3 (its input transform), on top of the learned motion: a steady
    rotation (degrees per second), a steady translation (image widths per second) and a smooth
    random shake of ``shake`` degrees (and shake / 100 image widths), three sinusoids per axis of
    0.2-1 Hz with phases from the seed. Frame 0 is never moved.

    The ranges (UsageError beyond them): a rotation of at most half a turn per frame either way
    (faster turns look like slower ones backwards), a translation of at most one image width per
    frame on each axis (faster, no two frames show the same content), a shake of at most 180
    degrees; and a track (``check_track``) whose translation stays within ``MAX_CAMERA_SHIFT``
    (10,000) image widths, as far as StyleGAN3's float32 input can place the view."""

    rotate: float = 0.0
    translate: tuple[float, float] = (0.0, 0.0)
    shake: float = 0.0
    fps: float = 12.0
    seed: int = 0

    def __post_init__(self):
        values = [self.rotate, *self.translate, self.shake, self.fps]
        if len(self.translate) != 2 or any(
            isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in values
        ):
            raise UsageError("camera: rotate, translate (x, y), shake and fps must be finite numbers")
        if self.shake < 0 or self.fps <= 0:
            raise UsageError("camera: shake must be >= 0 and fps > 0")
        if abs(self.rotate) / self.fps > 180:
            raise UsageError(
                f"camera: rotate must be at most 180 degrees per frame either way ({180 * self.fps:g} per "
                f"second at {self.fps:g} fps), got {self.rotate:g}"
            )
        if max(map(abs, self.translate)) / self.fps > 1:
            raise UsageError(
                f"camera: translate must be at most 1 image width per frame on each axis ({self.fps:g} per "
                f"second at {self.fps:g} fps), got {self.translate[0]:g},{self.translate[1]:g}"
            )
        if self.shake > 180:
            raise UsageError(f"camera: shake must be at most 180 degrees, got {self.shake:g}")

    def check_track(self, frames: int) -> None:
        """UsageError unless the translation of a track of ``frames`` frames stays within
        ``MAX_CAMERA_SHIFT`` image widths (the steady part grows with time; the shake adds at
        most 2 x shake / 100)."""
        reach = max(map(abs, self.translate)) * (frames - 1) / self.fps + 2 * self.shake / 100
        if reach > MAX_CAMERA_SHIFT:
            raise UsageError(
                f"camera: the translation reaches {reach:.4g} image widths by frame {frames}; at most "
                f"{MAX_CAMERA_SHIFT:g} (StyleGAN3's float32 input cannot place the view further): "
                "translate slower or render fewer frames"
            )

    @property
    def moves(self) -> bool:
        return bool(self.rotate or any(self.translate) or self.shake)

    def __call__(self, frame: torch.Tensor) -> torch.Tensor:
        """[N] frame numbers -> [N, 3, 3] cameras (``generators.stylegan3.camera_matrix``)."""
        t = frame.cpu().double() / self.fps  # float64 on the host (MPS has none)
        angle, tx, ty = self.rotate * t, self.translate[0] * t, self.translate[1] * t
        if self.shake:
            g = _generator(self.seed, 4)
            wave = []
            for _ in range(3):  # angle, x, y
                f = 0.2 + 0.8 * torch.rand(3, generator=g, dtype=torch.float64)
                phase = 2 * math.pi * torch.rand(3, generator=g, dtype=torch.float64)
                wave.append((torch.sin(2 * math.pi * f * t[:, None] + phase) - torch.sin(phase)).sum(1) / 3)
            angle, tx, ty = (
                angle + self.shake * wave[0],
                tx + self.shake / 100 * wave[1],
                ty + self.shake / 100 * wave[2],
            )
        return camera_matrix(angle, tx, ty)


def check_camera(camera: Camera | None, G, frames: int) -> Camera | None:
    """``camera`` if it moves (None if it does not); a UsageError unless G is a StyleGAN3 and the
    track of ``frames`` frames stays in range (``Camera.check_track``)."""
    if camera is None or not camera.moves:
        return None
    camera.check_track(frames)
    if getattr(G, "family", None) != "stylegan3":
        raise UsageError(
            f"a camera track (rotate, translate, shake) moves StyleGAN3's input; '{G.identity.get('name', '?')}' "
            f"is {G.family}"
        )
    return camera


def check_start(start: Latent | None, G, classes=None) -> None:
    """A latent can start G's videos only if it was found with G (``loaders.latents.check_latent``:
    its weights sha256, family and sizes); a BigGAN start brings its class vector, so ``classes``
    cannot be given with it (``start`` None: that check alone, before any photo is inverted)."""
    if G.c_dim and classes:
        raise MocohdError(
            "--class does not apply with --start: a start latent brings the class mix its inversion "
            "found (--class-to still moves the videos to a class)"
        )
    if start is not None:
        check_latent(start, G)


def _frames(
    M,
    G,
    frames,
    videos,
    seed,
    truncation,
    noise,
    interpolate,
    batch,
    dtype,
    labels,
    class_to,
    start=None,
    camera: Camera | None = None,
    edit: LatentEdit | None = None,
    loop: bool = False,
    track: paths.KeyframeTrack | None = None,
    audio: AudioDrive | None = None,
    size: int | None = None,
    should_stop: Callable[[], bool] | None = None,
):
    device = next(G.parameters()).device
    M = M.to(device)
    z_gen, eps_gen, noise_gen = _generator(seed, 0), _generator(seed, 1), _generator(seed, 2)
    total = paths.frame_count(frames, interpolate, loop)
    done = 0
    layers = None  # start in space w+: each video's per-layer w's [V, num_ws, w_dim]
    with torch.no_grad():
        if track is not None:  # keyframes: the path's first w (a motion on it starts there)
            w1 = track.first().to(device).expand(videos, -1)
            noise_of = VideoNoise(G, videos, noise, noise_gen, device)
        elif start is None:
            w1 = draw_w1(G, videos, z_gen, device)
            noise_of = VideoNoise(G, videos, noise, noise_gen, device)
        else:
            pick = start.of_videos(videos)
            base = start.ws[pick].to(device)
            layers = base if start.space == "w+" else None
            w1 = base.mean(1) if layers is not None else base[:, 0]  # w: every layer's w is this one
            noise_of = VideoNoise(G, videos, noise, noise_gen, device)
            if start.noise is not None and noise == "fixed":  # the maps the inversion found
                noise_of.maps = [m[pick].to(device) for m in start.noise]
        walker = trajectory_chunks
        if audio is not None:  # the music scales every step of the walk

            def walker(*args, **kw):
                return audio.follow(trajectory_chunks(*args, **kw))

        for ws in paths.walk(M, w1, frames, interpolate, eps_gen, walker, loop, track):
            steps = ws.shape[1]
            flat = ws.transpose(0, 1).reshape(steps * videos, *ws.shape[2:])  # time-major: frame t of every video
            video_of = torch.arange(videos, device=device).repeat(steps)
            if layers is not None:  # w+: the motion's displacement added to every layer's w
                flat = layers[video_of] + (flat - w1[video_of])[:, None, :]
            cs = None
            if labels is not None:  # [steps * videos, c_dim]
                cs = class_vectors(G, labels, torch.arange(done, done + steps), total, class_to, device)
            at = done + torch.arange(steps).repeat_interleave(videos)  # the frame of each w
            cams = camera(at) if camera is not None else None
            done += steps
            images = []
            for i in range(0, flat.shape[0], batch):
                if should_stop is not None and should_stop():
                    raise Cancelled("the render was cancelled: nothing written")
                part = slice(i, i + batch)
                img = synthesize(
                    G,
                    flat[part],
                    noise_of(video_of[part]),
                    None if cs is None else cs[part],
                    truncation,
                    dtype,
                    None if cams is None else cams[part].to(device),
                    edit if audio is None else audio.edit(edit, at[part]),
                    size,
                )
                images.append(to_uint8(img))
            # one copy to the host per chunk of steps, not one per batch (each waits for the device)
            images = torch.cat(images).cpu().reshape(steps, videos, *images[0].shape[1:])
            yield from images


@dataclass
class RenderResult:
    paths: list[Path]
    frames: int  # frames per video, as written
    size: tuple[int, int]  # (height, width) of each written frame
    cross_domain: str | None = None  # what was re-expressed, if anything
    videos: int = 1  # how many were rendered


@dataclass(kw_only=True)
class RenderConfig:
    """The settings of a render (``render``): the one place their defaults live; the command line
    shows them and passes only the options it was given.

    Built, it checks what it can alone (UsageError, one line): frames, interpolate, batch and a
    given ``videos`` whole numbers >= 1, seed in 0..2**40 - 1, truncation finite and >= 0, noise
    and dtype. ``render`` checks the rest before any model loads (fps for the output's format,
    the camera, the outputs, the start latents) or once the models are loaded (classes, the
    pair, BigGAN's truncation).

    ``videos``: None, one video, or one per start latent. ``fmt``: mp4, webm, gif or png (None:
    from the output's name). ``start``: latent names, latent files, ``Latent`` objects or photos
    (inverted first with ``invert.invert``'s defaults and stored under the photo's name when that
    name is free); ``invert_options``: keyword arguments for that ``invert`` (steps, loss, space,
    seed). ``rotate`` (degrees per second), ``translate`` (x, y image widths per second) and
    ``shake`` (degrees): a camera track for StyleGAN3 (``Camera``; seeded by ``seed``).
    ``classes`` (numbers or ImageNet names) and ``class_to``: class-conditional generators
    (BigGAN). ``edits`` (``DIRECTION=STRENGTH`` strings or ``edits.Edit``s), ``edit_layers`` and
    ``truncation_cutoff``: semantic edits of every frame (``edits``: parsed, and direction files
    read, when the config is built; checked against the generator before any frame).
    ``loop``: the last frame flows into the first (``paths``: at least 3 frames, no
    class_to, no camera track); ``keyframes``: a ``paths.KeyframePath`` (or its keys) the videos
    follow instead of starting where the seed says (then ``frames`` is unused: the path's
    seconds make its length; no start, interpolate 1).
    ``audio``: a sound file (anything ffmpeg decodes) that drives the motion and is muxed into
    the video (mp4, webm; no loop): without ``frames`` the video lasts as long as the audio
    (``frames`` None: ``DEFAULT_FRAMES`` without audio); ``audio_map`` (``audio.parse_audio_map``:
    "low=pca:0,high=sefa:3", "none"; None: ``audio.DEFAULT_MAP``) and ``audio_strength`` (in
    standard deviations of w, as edits'): the bands' directions.
    ``size``: frames of size x size pixels, a power of two up to the generator's resolution (checked
    once it is loaded): StyleGAN2 stops its synthesis at that block, the others shrink their frames
    (``frames.synthesize``); None: the generator's resolution.
    """

    motion: str | os.PathLike = "demo"
    image: str | os.PathLike = "demo"
    frames: int | None = None  # motion steps per video: DEFAULT_FRAMES, or as long as the audio
    videos: int | None = None
    grid: bool = False
    seed: int = 0
    fps: float = 12.0
    truncation: float = 1.0
    noise: str = "fixed"
    interpolate: int = 1
    device: str = "auto"
    dtype: str = "fp32"
    batch: int = 8
    fmt: str | None = None
    classes: list[str | int] | None = None
    class_to: str | int | None = None
    start: list[str | os.PathLike | Latent] | str | os.PathLike | Latent | None = None
    invert_options: dict | None = None
    rotate: float = 0.0
    translate: tuple[float, float] = (0.0, 0.0)
    shake: float = 0.0
    edits: list[str | Edit] | None = None  # DIRECTION=STRENGTH (``edits``): pca:K, sefa:K or a direction file
    edit_layers: str | tuple[int, int] | None = None  # "a-b": the w's the edits move
    truncation_cutoff: int | None = None  # the truncation on the first N w's only
    loop: bool = False
    keyframes: paths.KeyframePath | None = None
    audio: str | os.PathLike | None = None
    audio_map: str | dict | None = None
    audio_strength: float = 1.0
    size: int | None = None  # frames of size x size px (a quick preview); None: the generator's resolution
    deterministic: bool = False  # deterministic kernels only: bitwise repeatable on CUDA (``runtime.precision``)

    def __post_init__(self):
        videos = 1 if self.videos is None else self.videos  # None stands for a count known later
        frames = DEFAULT_FRAMES if self.frames is None else self.frames
        frames, videos, self.seed, self.truncation, self.interpolate, self.batch = check_numbers(
            frames, videos, self.seed, self.truncation, self.interpolate, self.batch
        )
        if self.frames is not None or self.audio is None:  # None with audio: as long as the audio
            self.frames = frames
        self.audio, self.audio_map, self.audio_strength = check_audio_options(
            self.audio, self.audio_map, self.audio_strength
        )
        if self.audio is not None and self.loop:
            raise UsageError(AUDIO_LOOP)
        moves = bool(self.rotate or any(self.translate) or self.shake)
        self.keyframes = paths.check_options(
            self.frames, self.interpolate, self.loop, self.keyframes, self.start, self.class_to, moves
        )
        if self.videos is not None:
            self.videos = videos
        check_noise(self.noise)
        if self.dtype not in DTYPES:
            raise UsageError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        check_deterministic(self.deterministic)
        self.edits, self.edit_layers, self.truncation_cutoff = check_edit_options(
            self.edits, self.edit_layers, self.truncation_cutoff
        )
        self.size = check_size(self.size)


def render(
    out: str | os.PathLike,
    config: RenderConfig | None = None,
    *,
    on_start: Callable[[int, str | None], None] | None = None,
    on_frame: Callable[[int], None] | None = None,
    on_note: Callable[[str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RenderResult:
    """Render videos to ``out`` as ``config`` says (default: ``RenderConfig()``): ``videos`` videos
    of ``frames`` motion steps with a motion model and an image generator.

    If the motion model was trained with another image generator, its steps
    are re-expressed in this generator's PCA basis (computed and cached on
    first use). ``on_start(total_frames, note)`` and ``on_frame(frames_done)``
    report progress (frames of all videos together).

    Start latents (``config.start``): the videos start from them, one video per latent
    (``videos`` None: as many as there are; more: they are used in turn; fewer: a UsageError,
    none is dropped); a photo needs VGG16 in the store unless ``invert_options`` picks the
    pixel loss (checked first). ``on_note(text)`` hears about long steps (an inversion) before
    them. ``should_stop()`` is asked before each batch of frames: once it says True the render
    stops, removes what it had written (no partial file is left, as on Ctrl-C) and raises
    ``stopping.Cancelled``.

    Without ``classes``, a class-conditional generator shows the classes the motion model was
    trained on with this generator, else classes drawn from the seed.
    """
    cfg = config if config is not None else RenderConfig()
    motion, image, frames, seed, fps, truncation = cfg.motion, cfg.image, cfg.frames, cfg.seed, cfg.fps, cfg.truncation
    interpolate, batch, grid, classes, class_to = cfg.interpolate, cfg.batch, cfg.grid, cfg.classes, cfg.class_to
    invert_options = cfg.invert_options
    out = Path(out)
    fmt = output_format(out, cfg.fmt)
    starts = read_starts(cfg.start)  # latents read (and checked) now; photos are inverted once G is loaded
    keys = paths.read_keyframes(cfg.keyframes)  # the same for keyframes (seeds too)
    count = sum(s.count if isinstance(s, Latent) else 1 for s in starts)
    videos = cfg.videos if cfg.videos is not None else count or 1
    if videos < count:  # the starts are explicit (a photo costs an inversion): none is dropped without a word
        raise UsageError(
            f"{count} start latents but {videos} video{'s' if videos > 1 else ''}: each start latent "
            f"begins a video of its own, so {count - videos} would not be used; give --videos {count} "
            "or more (more videos take the latents in turn), or fewer --start"
        )
    photos = [s for s in starts if isinstance(s, Path)]
    paths.check_photos_invertible(photos, invert_options, image, "--start", "`mocohd render --start {name} ...`")
    paths.check_keyframe_photos(keys, invert_options, image)
    fps = check_fps(fmt, fps)
    check_audio_options(cfg.audio, cfg.audio_map, cfg.audio_strength, fmt)
    samples, rate = read_audio(cfg.audio) if cfg.audio is not None else (None, None)
    if keys:  # the path's length
        frames = cfg.keyframes.frames(len(keys), fps, cfg.loop)
    elif frames is None:  # as long as the audio: the steps whose frames fit in it
        frames = (audio_frame_count(samples, rate, fps) - 1) // interpolate + 1
    total = paths.frame_count(frames, interpolate, cfg.loop)
    camera = Camera(cfg.rotate, tuple(cfg.translate), cfg.shake, fps, seed)
    camera.check_track(total)
    videos = check_videos(videos, grid)
    for path in output_paths(out, videos, grid):  # before loading anything: fail fast
        check_output(path, fmt)
    deterministic_process(cfg.deterministic)  # before cuBLAS's first use
    G = load_image_generator(image, device=cfg.device)
    with precision(next(G.parameters()).device, deterministic=cfg.deterministic or None):  # exact float32
        check_dtype_supported(DTYPES[cfg.dtype], next(G.parameters()).device)
        size = check_size(cfg.size, G) or G.resolution
        check_frame_budget(videos, size, size, grid)
        M = load_motion(motion, device=next(G.parameters()).device)
        source_sha = M.image.get("image_sha256")
        M, note = express(M, G, image)  # another generator (any w size): its PCA basis
        if cfg.loop:
            M, fitted = paths.fit_periods(M, frames)
            note = "\n".join(n for n in (note, fitted) if n) or None
        labels = check_pair(M, G, classes, truncation) or None  # before any work
        label_to = check_pair(None, G, [class_to], truncation)[0] if class_to is not None else None
        edit = resolve_edits(G, cfg.edits, cfg.edit_layers, cfg.truncation_cutoff, image=image, on_note=on_note)
        if edit is not None and edit.summary:
            note = f"{note}\n{edit.summary}" if note else edit.summary
        drive = sound = None
        if samples is not None:
            features = audio_features(samples, rate, fps, total)
            drive = audio_drive(
                G, features, cfg.audio_map, cfg.audio_strength, cfg.edit_layers, image=image, on_note=on_note
            )
            sound = mux_args(cfg.audio, total / fps, fmt)
            note = f"{note}\n{drive.summary}" if note else drive.summary
        per_video = None
        if starts:
            check_start(None, G, labels)  # BigGAN: the classes come with the start latents (below)
        elif G.c_dim:
            recorded = M.source.get("classes")  # metadata: not covered by the weights hash, checked like --class
            if labels is None and recorded and source_sha == G.identity["weights_sha256"]:
                try:
                    labels = check_pair(None, G, [int(k) for k in recorded])
                except (TypeError, ValueError, OverflowError, MocohdError):
                    raise MocohdError(
                        f"{motion}: damaged metadata: the classes it records ({str(recorded)[:60]}) are "
                        f"not classes of '{G.identity['name']}'"
                    ) from None
            per_video = video_classes(G, videos, seed, labels)
            shown = sorted(set(per_video))
            line = (
                "class "
                + ", ".join(describe_class(k, G.c_dim) for k in shown[:8])
                + (", ..." if len(shown) > 8 else "")
            )
            if label_to is not None:
                line += f" -> {describe_class(label_to, G.c_dim)}"
            note = f"{note}\n{line}" if note else line
        camera = check_camera(camera, G, total)
        if G.c_dim:  # BigGAN: photos are inverted at the truncation the videos are made at
            invert_options = {"truncation": truncation, **(invert_options or {})}
        first = start_latent(starts, G, on_note, invert_options) if starts else None
        track = None
        if keys:
            track = cfg.keyframes.track(G, keys, fps, cfg.loop, lambda p: start_latent([p], G, on_note, invert_options))
        if first is not None:
            check_start(first, G)
            if G.c_dim:  # BigGAN: each video shows its start latent's class vector
                per_video = first.classes[first.of_videos(videos)]
                top = sorted({int(k) for k in first.classes.argmax(dim=1).tolist()})
                line = "class mix of the start latent(s), mostly " + ", ".join(
                    describe_class(k, G.c_dim) for k in top[:8]
                )
                if label_to is not None:
                    line += f" -> {describe_class(label_to, G.c_dim)}"
                found = float(first.info.get("truncation", 1.0))
                if found != truncation:
                    line += f"; found at truncation {found:g}: frame 0 shows the photo only at --truncation {found:g}"
                note = f"{note}\n{line}" if note else line
        if on_start:
            on_start(total * videos, note)
        # everything is checked above: straight to the frames (render_frames would check it all again)
        stream = _frames(
            M,
            G,
            frames,
            videos,
            seed,
            truncation,
            cfg.noise,
            interpolate,
            batch,
            DTYPES[cfg.dtype],
            per_video,
            label_to,
            first,
            camera,
            edit=edit,
            loop=cfg.loop,
            track=track,
            audio=drive,
            size=size,
            should_stop=should_stop,
        )
        written, count, size = write_videos(
            stream, out, fmt, fps, videos, grid, on_frame and (lambda n: on_frame(n * videos)), sound
        )
        return RenderResult(written, count, size, note, videos)
