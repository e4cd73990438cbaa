"""`mocohd eval`: FVD and FID of generated videos against a dataset, and where the results go
(a table, ``--json``, the run's metrics.jsonl)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..errors import MocohdError, UsageError
from ..formats.canonical import atomic_write_bytes
from ..metrics.evaluate import append_results, evaluate as evaluate_videos, run_of
from .console import out, print_notes, say
from .options import Deterministic, Device, Image, Motion, Seed
from .progress import Stages

Data = Annotated[Path, typer.Option("--data", help="The real videos: a folder of videos and/or frame folders.")]
Fake = Annotated[Path | None, typer.Option("--fake", help="Score this folder of videos instead (another system's).")]
Metrics = Annotated[
    list[str] | None, typer.Option("--metric", help="fvd16 (default), fvd128, fvd128-sub8, fid; repeat for several.")
]
Videos = Annotated[
    int | None, typer.Option("--videos", help="Real and fake clips of FVD (default 2048, the protocol's).")
]
FIDFrames = Annotated[
    str | None,
    typer.Option("--fid-frames", help="Frames of FID: a number (default 50000, or what the data has) or 'all'."),
]
Truncation = Annotated[float, typer.Option("--truncation", help="Truncation psi of the rendered fakes (1 = none).")]
FrameSize = Annotated[
    int | None,
    typer.Option(
        "--frame-size",
        help=(
            "Square size both sides are compared at (default: the generator's resolution up to 256; with --fake, "
            "the videos' own size up to 256 when they are squares of one size, else 256)."
        ),
    ),
]
Batch = Annotated[int, typer.Option("--batch", help="Frames per generator forward and clips per detector forward.")]
I3D = Annotated[
    str | None, typer.Option("--i3d", help="I3D detector: name or file (default: the store's, `mocohd fetch i3d`).")
]
Inception = Annotated[
    str | None, typer.Option("--inception", help="Inception detector: name or file (default: the store's).")
]
Repeat = Annotated[
    bool,
    typer.Option("--repeat", help="Small datasets: cycle through the real videos (new offsets) until --videos clips."),
]
JSONOut = Annotated[Path | None, typer.Option("--json", help="Also write the results to this JSON file.")]


def _fid_frames(value: str | None) -> int | str | None:
    """--fid-frames: a number, 'all' or None (UsageError otherwise)."""
    if value is None or value == "all":
        return value
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"--fid-frames must be a number or 'all', got {value!r}") from None


def eval_(
    data: Data,
    motion: Motion("Motion model (name or path) whose videos to score.") = None,
    image: Image("Image generator it drives (default: demo).") = None,
    fake: Fake = None,
    metrics: Metrics = None,
    videos: Videos = None,
    fid_frames: FIDFrames = None,
    seed: Seed("Seed of the real clips' offsets and of the fakes: same seed, same number.") = 0,
    truncation: Truncation = 1.0,
    frame_size: FrameSize = None,
    device: Device = "auto",
    deterministic: Deterministic = False,
    batch: Batch = 8,
    i3d: I3D = None,
    inception: Inception = None,
    repeat: Repeat = False,
    json_out: JSONOut = None,
):
    """Score generated videos against a dataset: FVD (I3D) and FID (Inception), by StyleGAN-V's protocol.

    Fakes are rendered on the fly (nothing written) from --motion and --image, or read from --fake.
    Real statistics are cached in the store, so a second evaluation only renders. Under torchrun
    every process takes its share of the videos."""
    fid_frames = _fid_frames(fid_frames)
    if fake is None and motion is None:
        raise UsageError("give --motion (with --image) to render the fakes, or --fake DIR to score a folder of videos")
    json_file = _check_json_path(json_out) if json_out is not None else None
    stages = Stages()
    try:
        results = evaluate_videos(
            metrics or ["fvd16"],
            data,
            motion=motion,
            image=image if image is not None else ("demo" if fake is None else None),
            fake=fake,
            videos=videos,
            fid_frames=fid_frames,
            seed=seed,
            truncation=truncation,
            device=device,
            deterministic=deterministic,
            batch=batch,
            frame_size=frame_size,
            i3d=i3d,
            inception=inception,
            repeat=repeat,
            progress=stages if os.environ.get("RANK", "0") == "0" else None,
            note=say,
        )
    except KeyboardInterrupt as e:
        e.outcome = "nothing written"
        raise
    finally:
        stages.stop()
    if os.environ.get("RANK", "0") == "0":  # under torchrun, process 0 reports
        _report(results, seed, json_out, json_file, motion if fake is None else None, image)


def _report(results, seed: int, json_out: Path | None, json_file: Path | None, motion: str | None, image) -> None:
    """Keep the results (``--json``; a ``motion`` of a training run: its metrics.jsonl), then print them."""
    # the results are kept before anything is printed: a closed stdout (`| head -1`) loses nothing
    if json_file is not None:
        try:
            atomic_write_bytes(json_file, (json.dumps([r.to_dict() for r in results], indent=1) + "\n").encode())
        except OSError as e:
            raise MocohdError(f"cannot write {json_out}: {e.strerror}") from e
    notes: list[str] = []
    folder = run_of(motion, note=notes.append) if motion is not None else None
    if folder is not None:
        try:
            append_results(folder, results, step=None, extra={"motion": motion, "image": image or "demo"})
        except OSError as e:
            notes.append(f"could not append to {folder / 'metrics.jsonl'}: {e.strerror}")
            folder = None
    out.print(_table(results))
    detectors = {f"{r.detector['name']} {r.detector['weights_sha256'][:12]}" for r in results}
    out.print(
        f"seed {seed}; frames compared at {results[0].frame_size} px; detectors: {', '.join(sorted(detectors))}",
        soft_wrap=True,
    )
    if json_file is not None:
        out.print(
            f"wrote {json_out}" + (f" (through the link, to {json_file})" if json_out.is_symlink() else ""),
            soft_wrap=True,
            markup=False,
        )
    if folder is not None:
        out.print(f"appended to {folder / 'metrics.jsonl'}", soft_wrap=True, markup=False)
    print_notes(notes)


def _table(results) -> Table:
    table = Table(box=None, pad_edge=False)
    for col in ("metric", "value", "real", "fake", "skipped", "real stats", "time"):
        table.add_column(col, justify="right" if col in ("value", "real", "fake", "skipped", "time") else "left")
    for r in results:
        skipped = str(r.skipped) if r.fake_skipped is None else f"{r.skipped} real, {r.fake_skipped} fake"
        table.add_row(
            r.metric,
            f"{r.value:.2f}",
            str(r.real),
            str(r.fake),
            skipped,
            "cached" if r.real_cached else "computed",
            f"{r.seconds['total']:.1f} s",
        )
    return table


def _check_json_path(path: Path) -> Path:
    """Before any work: the file ``--json`` writes, ``path`` or, for a symbolic link, the file it points
    to (written through, atomically: the link stays a link). It must be a file or not exist yet, in a
    folder that exists and takes a new file (tried: the atomic write puts a temporary file beside it)."""
    target = Path(os.path.realpath(path))
    try:
        if target.is_dir():
            raise UsageError(f"--json {path}: is a folder; give a file name")
        if target.exists() and not target.is_file():
            raise UsageError(f"--json {path}: is not a regular file; give a file name")
        if not target.parent.is_dir():
            raise MocohdError(f"--json {path}: the folder {target.parent} does not exist")
        probe = target.parent / f".{target.name}.tmp-{os.getpid()}-probe"
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        probe.unlink()
    except OSError as e:  # a name too long, a read-only folder, no permission...
        raise MocohdError(f"--json {path}: cannot write it: {e.strerror}") from e
    return target
