"""`mocohd render`: its options (their defaults are ``RenderConfig``'s), the progress of the frames
and the summary of what was written."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import TimeElapsedColumn

from ..errors import UsageError
from ..render import RenderConfig, render as render_videos
from .console import err, out, say
from .options import Device, Image, Motion, Seed, given
from .progress import Counter

Output = Annotated[Path, typer.Argument(metavar="OUT", help="Output: .mp4, .webm, .gif, or a folder for PNG frames.")]
Frames = Annotated[
    int, typer.Option("-n", "--frames", help="Motion steps per video (any length; memory does not grow).")
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

Edits = Annotated[
    list[str] | None,
    typer.Option(
        "--edit",
        help="DIRECTION=STRENGTH: move every frame along pca:K or sefa:K (strength in stdevs of w) or a "
        ".npy/.safetensors direction (strength x the vector); repeatable. `mocohd directions` shows them.",
    ),
]
EditLayers = Annotated[
    str | None,
    typer.Option("--edit-layers", help="A-B: the w's the edits move (0-based, inclusive; default all, sefa 0-3)."),
]
TruncationCutoff = Annotated[
    int | None, typer.Option("--truncation-cutoff", help="Truncate only the first N w's (the coarse layers).")
]

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
):
    """Render videos: a motion model walks the latent space of an image generator.

    An existing OUT file is replaced only when the new one is complete; a PNG folder must be new,
    empty or a previous render's frames. Ctrl-C or SIGTERM leave nothing partial."""
    settings = given(ctx, locals())  # the library's defaults apply to the rest
    settings.pop("output", None)  # where, not how: render's own argument
    if "translate" in settings:
        settings["translate"] = _camera_shift(translate)
    counter = Counter("rendering", "frames", "frames", "{task.fields[rate]}", TimeElapsedColumn(), fields=("rate",))

    def started(total, note):  # models are loaded: from here on there is something to show
        if note:
            err.print(note)
        counter.start(total)

    def advanced(n):
        counter.update(n, rate=f"{n / max(counter.elapsed, 1e-9):.1f} frames/s")

    try:
        result = render_videos(output, RenderConfig(**settings), on_start=started, on_frame=advanced, on_note=say)
    except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM: main prints one line with this outcome
        if getattr(e, "outcome", None) is None:
            e.outcome = "nothing written"
        raise
    finally:
        counter.stop()
    _report(result, counter.elapsed)


def _report(result, elapsed: float) -> None:
    """What was written: the files, then one line of frames, size and speed."""
    h, w = result.size
    total = result.frames * result.videos
    for p in result.paths:
        out.print(f"wrote {p}")
    out.print(
        f"{len(result.paths)} file(s), {result.frames} frames of {w}x{h} each, "
        f"{total} frames in {elapsed:.1f} s ({total / max(elapsed, 1e-9):.1f} frames/s)"
    )


def _camera_shift(translate: str) -> tuple[float, float]:
    """``--translate X,Y`` as two numbers (a UsageError naming the option)."""
    try:
        shift = tuple(float(v) for v in translate.split(","))
        if len(shift) != 2:
            raise ValueError
    except ValueError:
        raise UsageError(f"--translate must be X,Y (two numbers), got {translate!r}") from None
    return shift
