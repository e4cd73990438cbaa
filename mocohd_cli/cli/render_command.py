"""`mocohd render`: its options (their defaults are ``RenderConfig``'s), the progress of the frames
and the summary of what was written."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import TimeElapsedColumn

from ..errors import UsageError
from ..paths import EASINGS, PATHS, SPACES, KeyframePath
from ..render import RenderConfig, render as render_videos
from .console import err, out, say
from .options import Deterministic, Device, Image, Motion, Seed, given, option
from .progress import Counter

Output = Annotated[Path, typer.Argument(metavar="OUT", help="Output: .mp4, .webm, .gif, or a folder for PNG frames.")]
Frames = Annotated[
    int | None,
    typer.Option(
        "-n",
        "--frames",
        help="Motion steps per video (any length; memory does not grow); default 32, or as long as --audio.",
    ),
]
Videos = Annotated[
    int | None,
    typer.Option(
        "--videos",
        "-k",
        help="Number of videos (one file each, or one grid with --grid); default 1, or one per --start latent.",
    ),
]
Grid = Annotated[bool, typer.Option("--grid", help="Tile all videos into one video.")]
FPS = Annotated[float, typer.Option("--fps", help="Frames per second of the written video.")]
Truncation = Annotated[float, typer.Option("--truncation", help="Truncation psi toward the average w (1 = none).")]
Noise = Annotated[str, typer.Option("--noise", help="fixed (drawn once per video), random (every frame) or off.")]
Interpolate = Annotated[
    int,
    typer.Option("--interpolate", help="K: K-1 latent in-between frames per step (the official --interpolation is 2)."),
]
DType = Annotated[str, typer.Option("--dtype", help="fp32, bf16 or fp16 synthesis.")]
Batch = Annotated[int, typer.Option("--batch", help="Frames per generator forward.")]
Format = Annotated[str | None, typer.Option("--format", help="mp4, webm, gif or png (default: from OUT).")]
Classes = Annotated[
    list[str] | None,
    typer.Option(
        "--class",
        help="BigGAN: class number or ImageNet name (golden_retriever); repeat or comma-separate for one per video.",
    ),
]
ClassTo = Annotated[
    str | None,
    typer.Option("--class-to", help="BigGAN: move each video's class vector linearly to this class over the video."),
]
Start = Annotated[
    list[str] | None,
    typer.Option(
        "--start",
        help="Start the videos from latents made by `mocohd "
        "invert` (a name or file), or from a photo (inverted first); repeat for several.",
    ),
]
Rotate = Annotated[float, typer.Option("--rotate", help="StyleGAN3 camera: degrees per second of rotation.")]
Translate = Annotated[str, typer.Option("--translate", help="StyleGAN3 camera: X,Y image widths per second.")]
Shake = Annotated[
    float,
    typer.Option(
        "--shake",
        help="StyleGAN3 camera: a smooth random shake of this many degrees "
        "(and hundredths of the image), from the seed.",
    ),
]

Edits = option(
    list[str] | None,
    "--edit",
    help="DIRECTION=STRENGTH: move every frame along pca:K or sefa:K (strength in stdevs of w) or a "
    ".npy/.safetensors direction (strength x the vector); repeatable. `mocohd directions` shows them.",
)
EditLayers = option(
    str | None, "--edit-layers", help="A-B: the w's the edits move (0-based, inclusive; default all, sefa 0-3)."
)
TruncationCutoff = option(int | None, "--truncation-cutoff", help="Truncate only the first N w's (the coarse layers).")
Loop = option(bool, "--loop", help="End where it began: the last frame flows into the first (motion or keyframes).")
Keyframes = option(
    list[str] | None,
    "--keyframes",
    help="A path through keyframes: seeds, latents of `mocohd invert` (name or file) or photos (inverted first); "
    "comma-separate or repeat.",
)
PathKind = option(str, "--path", help=f"{', '.join(PATHS)} (Catmull-Rom) from keyframe to keyframe.")
Easing = option(str, "--easing", help=f"{', '.join(EASINGS)}: the timing within each segment.")
Seconds = option(float, "--seconds", help="Seconds from one keyframe to the next (at --fps).")
Space = option(str, "--in", help=f"{' or '.join(SPACES)}: the latent space of the path (z: seeds only).")
MotionWeight = option(
    float,
    "--motion-weight",
    help="How much of the motion model's movement rides on a keyframe path (0: none; 1 when --motion is given).",
)
Audio = option(
    Path | None,
    "--audio",
    help="Music (any file ffmpeg decodes): loudness and onsets drive the motion's speed, bands move directions; "
    "muxed into the video (mp4, webm), which lasts as long as the music unless -n is given.",
)
AudioMap = option(
    str | None,
    "--audio-map",
    help="BAND=DIRECTION,...: the bands (low, mid, high) that move pca:K, sefa:K or a direction file, or none "
    "(default low=sefa:0,mid=sefa:1,high=sefa:2; none for BigGAN).",
)
AudioStrength = option(
    float, "--audio-strength", help="How far a band at full energy moves its direction (stdevs of w)."
)
Size = option(
    int | None,
    "--size",
    help="Frame side in px, a power of two up to the generator's resolution, for a quick look: StyleGAN2 stops "
    "its synthesis at that block (fast), StyleGAN3 and BigGAN shrink their full-size frames.",
)
# option -> KeyframePath field
PATH_OPTIONS = dict(
    keyframes="keys", path="path", easing="easing", seconds="seconds", space="space", motion_weight="motion_weight"
)

TRANSLATE = ",".join(f"{v:g}" for v in RenderConfig.translate)  # --translate's default, as it is typed


def render(
    ctx: typer.Context,
    output: Output = Path("out.mp4"),
    motion: Motion("Motion model: name or path.") = RenderConfig.motion,
    image: Image("Image generator: name or path.") = RenderConfig.image,
    frames: Frames = RenderConfig.frames,
    videos: Videos = RenderConfig.videos,
    grid: Grid = RenderConfig.grid,
    seed: Seed("Same seed, same frames (on the same machine and device).") = RenderConfig.seed,
    fps: FPS = RenderConfig.fps,
    truncation: Truncation = RenderConfig.truncation,
    noise: Noise = RenderConfig.noise,
    interpolate: Interpolate = RenderConfig.interpolate,
    device: Device = RenderConfig.device,
    dtype: DType = RenderConfig.dtype,
    deterministic: Deterministic = RenderConfig.deterministic,
    batch: Batch = RenderConfig.batch,
    fmt: Format = RenderConfig.fmt,
    classes: Classes = RenderConfig.classes,
    class_to: ClassTo = RenderConfig.class_to,
    start: Start = RenderConfig.start,
    rotate: Rotate = RenderConfig.rotate,
    translate: Translate = TRANSLATE,
    shake: Shake = RenderConfig.shake,
    edits: Edits = RenderConfig.edits,
    edit_layers: EditLayers = RenderConfig.edit_layers,
    truncation_cutoff: TruncationCutoff = RenderConfig.truncation_cutoff,
    loop: Loop = RenderConfig.loop,
    keyframes: Keyframes = None,
    path: PathKind = KeyframePath.path,
    easing: Easing = KeyframePath.easing,
    seconds: Seconds = KeyframePath.seconds,
    space: Space = KeyframePath.space,
    motion_weight: MotionWeight = KeyframePath.motion_weight,
    audio: Audio = RenderConfig.audio,
    audio_map: AudioMap = RenderConfig.audio_map,
    audio_strength: AudioStrength = RenderConfig.audio_strength,
    size: Size = RenderConfig.size,
):
    """Render videos: a motion model walks the latent space of an image generator.

    An existing OUT file is replaced only when the new one is complete; a PNG folder must be new,
    empty or a previous render's frames. Ctrl-C or SIGTERM leave nothing partial."""
    config = _config(given(ctx, locals()))  # the library's defaults apply to the rest
    counter = Counter("rendering", "frames", "frames", "{task.fields[rate]}", TimeElapsedColumn(), fields=("rate",))
    started, advanced = _reporters(counter)
    try:
        result = render_videos(output, config, on_start=started, on_frame=advanced, on_note=say)
    except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM: main prints one line with this outcome
        if getattr(e, "outcome", None) is None:
            e.outcome = "nothing written"
        raise
    finally:
        counter.stop()
    _summary(result, counter.elapsed)


def _reporters(counter: Counter):
    """``render``'s progress callbacks: the notes and the bar once the models are loaded, then
    the frames and their rate."""

    def started(total, note):  # models are loaded: from here on there is something to show
        if note:
            err.print(note)
        counter.start(total)

    def advanced(n):
        counter.update(n, rate=f"{n / max(counter.elapsed, 1e-9):.1f} frames/s")

    return started, advanced


def _config(settings: dict) -> RenderConfig:
    """The options the command line gave, as a ``RenderConfig``."""
    settings.pop("output", None)  # where, not how: render's own argument
    if "translate" in settings:
        settings["translate"] = _camera_shift(settings["translate"])
    path_options = {PATH_OPTIONS[k]: settings.pop(k) for k in list(settings) if k in PATH_OPTIONS}
    if path_options:
        settings["keyframes"] = _keyframe_path(path_options, settings)
    return RenderConfig(**settings)


def _summary(result, elapsed: float) -> None:
    """What was written, and how fast."""
    h, w = result.size
    total = result.frames * result.videos
    for p in result.paths:
        out.print(f"wrote {p}")
    out.print(
        f"{len(result.paths)} file(s), {result.frames} frames of {w}x{h} each, "
        f"{total} frames in {elapsed:.1f} s ({total / max(elapsed, 1e-9):.1f} frames/s)"
    )


def _keyframe_path(options: dict, settings: dict) -> KeyframePath:
    """The keyframe options as a ``KeyframePath`` (UsageError for what contradicts them): the motion
    rides on the path at weight 1 when --motion is given without --motion-weight."""
    if "keys" not in options:
        flags = {"path": "--path", "easing": "--easing", "seconds": "--seconds", "space": "--in"}
        given = ", ".join(flags.get(k, "--motion-weight") for k in options)
        raise UsageError(f"{given} {'shape' if len(options) > 1 else 'shapes'} a keyframe path: give --keyframes too")
    if "frames" in settings:
        raise UsageError("-n/--frames does not apply with --keyframes: each segment lasts --seconds at --fps")
    if "motion" in settings:
        options.setdefault("motion_weight", 1.0)
    return KeyframePath(**options)


def _camera_shift(translate: str) -> tuple[float, float]:
    """``--translate X,Y`` as two numbers (a UsageError naming the option)."""
    try:
        shift = tuple(float(v) for v in translate.split(","))
        if len(shift) != 2:
            raise ValueError
    except ValueError:
        raise UsageError(f"--translate must be X,Y (two numbers), got {translate!r}") from None
    return shift
