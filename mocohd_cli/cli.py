"""The ``mocohd`` command line: a thin Typer layer over the library.

Every command parses its options, calls one library function and prints the
result. Failures the user can fix raise ``MocohdError`` and become one line on
stderr with exit code 1; ``--debug`` (or ``MOCOHD_DEBUG=1``) shows tracebacks.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import warnings
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import torch
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from . import __version__, store
from .classes import describe_class
from .data import prepare as prepare_data
from .errors import MocohdError, UsageError
from .formats.canonical import KINDS, atomic_write_bytes, read_header
from .hub import fetch as fetch_model, push as push_model
from .invert import (
    check_generator as check_invert_generator,
    check_options as check_invert_options,
    invert as invert_photos,
)
from .loaders import describe, import_model, load_image_generator
from .loaders.latents import default_name as default_latent_name, free_name as free_latent_name, save_latent
from .loaders.pca_bases import pca_for
from .loaders.vgg16 import MISSING as VGG16_MISSING, have_vgg16, load_vgg16
from .metrics.evaluate import append_results, evaluate as evaluate_videos, run_of
from .motion import MotionConfig
from .photos import check_crop, photo_identity, probe as probe_photo, read_photo
from .render import RenderConfig, render as render_videos
from .stopping import Terminated
from .train import TrainConfig, train as train_motion
from .train.image_trainer import ImageTrainConfig, train_image as train_images
from .train.monitor import summary as monitor_summary

app = typer.Typer(
    name="mocohd",
    help="High-resolution video synthesis with pretrained image generators (MoCoGAN-HD).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)
_debug = os.environ.get("MOCOHD_DEBUG", "") not in ("", "0")


def _version(value: bool):
    if value:
        out.print(f"mocohd {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors (or set MOCOHD_DEBUG=1)."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
):
    global _debug
    _debug = _debug or debug


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


@app.command("list")
def list_models():
    """Known models (the registry in weights/) and what is in the local store."""
    # Two lines per model, so that any terminal width reads well: the short
    # columns, then aliases / Hub repo / description, cut to the width with an ellipsis.
    rows = []  # (name, kind, family, res, where, detail)
    for e in store.registry():
        fetched = (store.home() / e.kind / f"{e.name}.safetensors").is_file()
        where = "shipped" if e.shipped else ("hub" if e.repo_id else "by hand") + (", in store" if fetched else "")
        detail = [
            f"aka {', '.join(e.aliases)}" if e.aliases else "",
            f"hub {e.repo_id}" if e.repo_id else "",
            f"from {e.url}" if e.url and not e.repo_id else "",
            e.description,
        ]
        rows.append((e.name, e.kind, e.family, str(e.resolution or ""), where, detail))
    for kind, name, path in store.list_store():
        try:
            h = read_header(path)
            res, family, src = str(h.config.get("resolution", "")), h.family, h.source
            detail = [_stored_origin(h.kind, h.image, src)]
        except MocohdError:
            res, family, src, detail = "", "unreadable", {}, ["cannot read its header"]
        shadow = store.shadowed(kind, name, src)
        if shadow is not None:
            detail.insert(0, f"hides the {'shipped' if shadow.shipped else 'registry'} {kind} model {shadow.name}")
        rows.append((name, kind, family, res, f"store, {_size(path.stat().st_size)}", detail))
    head = ("name", "kind", "family", "res", "where")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(cells, style=None):
        parts = [c.rjust(w) if i == 3 else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        out.print(Text("  ".join(parts).rstrip(), style=style or ""), no_wrap=True, overflow="ellipsis", crop=True)

    out.print(f"models  (store: {store.home()})", soft_wrap=True, markup=False)
    line(head, "bold")
    for *cells, detail in rows:
        line(cells)
        text = " · ".join(d for d in detail if d)
        if text:
            out.print(Text("    " + text, style="dim"), no_wrap=True, overflow="ellipsis", crop=True)


def _stored_origin(kind: str, image: dict, src: dict) -> str:
    """Where a store model came from, in a few words (for `mocohd list`)."""
    if src.get("repo"):
        what = f"fetched from {src['repo']}/{src.get('file', '')}"
    elif src.get("data"):
        what = f"trained on {src['data']}" + (f", step {src['step']}" if src.get("step") else "")
    elif src.get("file"):
        what = f"imported from {src['file']}"
    else:
        what = ""
    image = image.get("image_name")
    if image and kind in ("motion", "pca", "latent"):
        what += ("; " if what else "") + ("of" if kind == "pca" else "for") + f" image generator {image}"
    return what


@app.command()
def info(
    name: str = typer.Argument(..., help="Model name or path (.safetensors, rosinality .pt, NVIDIA .pkl)."),
    kind: str | None = typer.Option(
        None,
        "--kind",
        help="image, motion, pca, i3d, inception, vgg16 or latent: show only that kind (default: every "
        "kind the name has, e.g. the demo image generator and the demo motion model).",
    ),
):
    """What a model is: kind, family, resolution, latent size, parameters, provenance, sha256."""
    if kind is not None and kind not in KINDS:
        raise UsageError(f"--kind must be one of {', '.join(KINDS)}")
    kinds = [kind]
    if kind is None and store.resolve(name).origin != "path":  # a name: every kind it resolves to
        kinds = [k for k in KINDS if _resolves(name, k)] or [None]
    for i, k in enumerate(kinds):
        m = describe(name, kind=k)
        if len(kinds) > 1:
            out.print(("\n" if i else "") + f"[bold]{m.kind} model {m.name}[/bold]", soft_wrap=True)
        _info_table(m)
    if len(kinds) > 1:
        out.print(
            f"\n'{name}' names {len(kinds)} models; --kind {kinds[0]} (or {', '.join(kinds[1:])}) shows one",
            soft_wrap=True,
            markup=False,
        )


def _resolves(name: str, kind: str) -> bool:
    try:
        store.resolve(name, kind=kind)
    except MocohdError:
        return False
    return True


def _info_table(m) -> None:
    """The rows of `mocohd info` for one model (a loaders.ModelInfo)."""
    cfg = m.config
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    rows = [
        ("name", m.name),
        ("file", f"{m.path}  ({m.origin}, {_size(m.file_size)})"),
        ("format", m.format if m.format == "mocohd" else f"{m.format} (not imported; `mocohd import` converts it)"),
        ("kind", m.kind),
        ("family", m.family),
    ]
    if "resolution" in cfg:
        rows.append(("resolution", f"{cfg['resolution']} x {cfg['resolution']}"))
    if "z_dim" in cfg and "w_dim" in cfg:
        rows.append(("latent", f"z {cfg['z_dim']}, w {cfg['w_dim']}"))
    if m.family == "biggan-deep":
        rows.append(
            (
                "latent",
                f"z {cfg['z_dim']} (truncated normal), {cfg['num_classes']} classes (embedding {cfg['embed_dim']})",
            )
        )
        rows.append(
            (
                "channels",
                f"width {cfg['channel_width']}, {len(cfg['layers'])} blocks, "
                f"self-attention before block {cfg['attention']}, {cfg['n_stats']} truncation statistics",
            )
        )
    if "channel_base" in cfg:
        rows.append(
            (
                "channels",
                f"base {cfg['channel_base']}, max {cfg['channel_max']}, mapping layers {cfg.get('mapping_layers')}",
            )
        )
    if m.family == "stylegan3":
        rows += _stylegan3_rows(cfg)
    if m.kind == "motion" and "n_pca" in cfg:
        rows.append(
            (
                "motion",
                f"w {cfg.get('w_dim')}, {cfg['n_pca']} PCA directions, LSTM {cfg.get('h_dim')}, "
                f"step weight {cfg.get('w_residual')}",
            )
        )
        if cfg.get("oscillators"):
            rows.append(("oscillators", _oscillator_row(m)))
    if m.kind == "latent":
        rows.append(
            (
                "latent",
                f"{cfg.get('count')} x {cfg.get('num_ws')} w's of size {cfg.get('w_dim')} (space "
                f"{cfg.get('space')}), noise maps {'stored' if cfg.get('noise') else 'none'}; "
                f"{cfg.get('loss', '?')} loss, {cfg.get('steps', '?')} steps",
            )
        )
        if cfg.get("c_dim"):  # BigGAN
            rows.append(
                (
                    "classes",
                    f"a mix of {cfg['c_dim']} classes per photo, found at truncation {cfg.get('truncation', 1)}",
                )
            )
        # the file's own metadata: a pair per photo, as far as both lists go
        for p, d in zip(cfg.get("photos") or [], cfg.get("distance") or [], strict=False):
            rows.append(("photo", f"{p.get('file')} (sha256 {str(p.get('sha256'))[:12]}): distance {d:.4f}"))
    if m.kind in ("motion", "pca", "latent"):
        who, sha = m.image.get("image_name"), m.image.get("image_sha256")
        rows.append(
            (
                {"motion": "trained with", "pca": "fitted on", "latent": "image generator"}[m.kind],
                f"{who} (weights {sha[:12]})" if who and sha else "unknown",
            )
        )
    rows.append(("parameters", f"{m.parameters:,}"))
    labels = {"format": "source format", "file": "original file", "file_sha256": "original sha256"}
    rows += [(labels.get(k, f"source {k}"), str(v)) for k, v in sorted(m.source.items())] or [("source", "-")]
    rows += [("weights sha256", m.weights_sha256), ("file sha256", m.file_sha256)]
    for k, v in rows:
        table.add_row(k, str(v))
    out.print(table)


def _oscillator_row(m) -> str:
    """The oscillator bank of a motion model: its size and largest movements."""
    return f"{len(m.oscillators)}, largest (period in frames: size in stdevs) " + ", ".join(
        f"{p:.2f}: {z:.2f}" for p, z in m.oscillators[:4]
    )


def _stylegan3_rows(cfg: dict) -> list[tuple[str, str]]:
    """`mocohd info` rows of a StyleGAN3 config: the variant (T or R, from the convolution size and
    the down-sampling filters, as NVIDIA's configs differ) and the hyper-parameters of its layer design."""
    k, radial = cfg.get("conv_kernel"), cfg.get("use_radial_filters")
    variant = {
        (3, False): "T (translation equivariant: 3x3 convolutions)",
        (1, True): "R (rotation equivariant: 1x1 convolutions, radial down-sampling filters)",
    }.get((k, radial), f"custom ({k}x{k} convolutions, radial filters {'on' if radial else 'off'})")
    r = cfg.get("resolution", 0)
    return [
        ("config", variant),
        (
            "layers",
            f"{cfg.get('num_layers')} + toRGB ({cfg.get('num_critical')} critically sampled), "
            f"{cfg.get('num_layers', 0) + 2} w's, margin {cfg.get('margin_size')} px, no noise inputs",
        ),
        (
            "filters",
            f"cutoff {cfg.get('first_cutoff'):g} -> {r / 2:g}, stopband {cfg.get('first_stopband'):.4g} -> "
            f"{r / 2 * cfg.get('last_stopband_rel', 0):.4g} (x{cfg.get('last_stopband_rel', 0):.4g}), "
            f"{cfg.get('filter_size')} taps per rate, leaky ReLU at {cfg.get('lrelu_upsampling')}x",
        ),
        ("output", f"scale {cfg.get('output_scale'):g}, conv clamp {cfg.get('conv_clamp')}"),
    ]


@app.command("import")
def import_(
    path: Path = typer.Argument(
        ...,
        help="File to import: rosinality .pt, NVIDIA .pkl, BigGAN .bin, I3D TorchScript .pt, "
        "pytorch-fid Inception .pth or mocohd .safetensors.",
    ),
    name: str = typer.Option(
        ..., "--name", help="Name to store it under (detectors: i3d, inception are the defaults eval uses)."
    ),
    kind: str | None = typer.Option(
        None, "--kind", help="Force the kind (image, motion, pca, i3d, inception, vgg16); auto-detected by default."
    ),
    force: bool = typer.Option(False, "--force", help="Replace a model of the same name in the store."),
    pca: Path | None = typer.Option(
        None, "--pca", help="PCA folder (pca_comp.npy, pca_stdev.npy) of an official motion checkpoint."
    ),
    image: str | None = typer.Option(None, "--image", help="Image generator a motion model or PCA basis belongs to."),
    w_residual: float = typer.Option(
        MotionConfig.w_residual,
        "--w-residual",
        help="Step weight lambda of an official motion checkpoint (not stored in it).",
    ),
):
    """Convert a local weight file (or an official PCA folder) to the canonical format and add it to the store."""
    if kind is not None and kind not in KINDS:
        raise UsageError(f"--kind must be one of {', '.join(KINDS)}")
    with err.status(f"importing {path.name}..."), _shadow_notes() as notes:
        h = import_model(path, name, kind=kind, overwrite=force, pca=pca, image=image, w_residual=w_residual)
    what = (
        f"{h.config['resolution']} px"
        if "resolution" in h.config
        else f"w {h.config.get('w_dim', '?')}"
        if "w_dim" in h.config
        else f"widths {', '.join(map(str, h.config['widths']))}"
        if h.kind == "vgg16"
        else f"{h.config.get('num_classes', h.config.get('feature_dim', '?'))}-d features"
    )
    out.print(f"imported {h.kind} model [bold]{name}[/bold] ({h.family}, {what}) -> {h.path}", soft_wrap=True)
    _print_notes(notes or [store.shadow_note(h.kind, name, h.source)])


@contextmanager
def _shadow_notes():
    """Collect the library's ShadowWarnings (a stored name that hides a shipped or
    registry model) into a list, to print as notes rather than as Python warnings."""
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", store.ShadowWarning)
        try:
            yield notes
        finally:
            others = [w for w in caught if not issubclass(w.category, store.ShadowWarning)]
            notes += [str(w.message) for w in caught if issubclass(w.category, store.ShadowWarning)]
    for w in others:  # anything else is shown as it would have been
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _print_notes(notes) -> None:
    for note in dict.fromkeys(n for n in notes if n):
        err.print(f"note: {note}", soft_wrap=True, markup=False, highlight=False)


@app.command()
def fetch(
    target: str = typer.Argument(
        ..., metavar="NAME|hf://OWNER/REPO/PATH", help="A registry name (see `mocohd list`) or any Hub file."
    ),
    name: str | None = typer.Option(None, "--name", help="Store name (default: the registry name or the file name)."),
    revision: str | None = typer.Option(None, "--revision", help="Branch, tag or commit on the Hub."),
    force: bool = typer.Option(False, "--force", help="Download and convert again even if the model is in the store."),
):
    """Download a model from the Hugging Face Hub, verify it, convert it and put it in the store."""
    with _shadow_notes() as notes:
        h, downloaded = fetch_model(target, name=name, revision=revision, force=force)
    src = h.source
    what = "fetched" if downloaded else "already in the store (use --force to fetch again)"
    out.print(f"{h.kind} model [bold]{h.path.stem}[/bold] {what}: {h.path}", soft_wrap=True)
    _print_notes(notes)
    out.print(
        f"from {src.get('repo')}/{src.get('file')} @ {(src.get('commit') or src.get('revision') or '?')[:12]}, "
        f"sha256 {str(src.get('file_sha256', ''))[:16]}..."
    )


@app.command()
def push(
    motion: str = typer.Argument(..., help="Motion model to share: name or path."),
    repo: str = typer.Option(..., "--repo", help="Hub repo OWNER/NAME (created if needed)."),
    private: bool = typer.Option(False, "--private", help="Create the repo as private."),
    samples: list[Path] | None = typer.Option(
        None, "--sample", help="A sample video or image to upload with it (repeatable)."
    ),
    license: str = typer.Option("other", "--license", help="Licence for the model card metadata."),
    message: str | None = typer.Option(None, "--message", help="Commit message."),
):
    """Share a motion model on the Hugging Face Hub, with a generated model card."""
    with err.status(f"uploading {motion} to {repo}..."):
        url = push_model(motion, repo, private=private, samples=samples or [], license=license, message=message)
    out.print(f"pushed [bold]{motion}[/bold] -> {url}")
    out.print(f"others get it with: mocohd fetch hf://{repo}")


@app.command()
def prepare(
    data: Path = typer.Option(..., "--data", help="Folder of videos and/or frame folders."),
    frame_size: int = typer.Option(128, "--frame-size", help="Square frame size of the training clips."),
    frames: int = typer.Option(16, "--frames", help="Frames per clip (videos too short for one clip are skipped)."),
    time_step: int = typer.Option(2, "--time-step", help="Take every n-th frame."),
    force: bool = typer.Option(False, "--force", help="Decode again even if the cache exists."),
):
    """Decode a video dataset once into the clip cache that training reads."""
    if frames < 1 or time_step < 1:
        raise UsageError("--frames and --time-step must be positive")
    with Progress(
        TextColumn("decoding videos"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("prepare", total=None)
        info = prepare_data(
            data,
            frame_size=frame_size,
            min_frames=(frames - 1) * time_step + 1,
            force=force,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    out.print(("reused the clip cache: " if info.reused else "prepared: ") + info.summary(), soft_wrap=True)


@app.command()
def pca(
    image: str = typer.Option("demo", "--image", help="Image generator: name or path."),
    samples: int = typer.Option(
        1_000_000, "--samples", help="Number of z samples (the official recipe uses 1,000,000)."
    ),
    batch: int = typer.Option(4096, "--batch", help="Samples per mapping-network forward."),
    seed: int = typer.Option(0, "--seed", help="Seed of the z samples: same seed, same basis."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    name: str | None = typer.Option(None, "--name", help="Store name (default: the generator's name)."),
    force: bool = typer.Option(False, "--force", help="Refit even if the store has a basis for this generator."),
):
    """Fit the latent PCA basis of an image generator and store it (cached per generator)."""
    G = load_image_generator(image, device=device)
    plain = None if err.is_terminal else _plain_progress("mapping z -> w", "samples", samples)

    def advanced(n):
        bar.update(task, completed=n)
        if plain:
            plain(n)

    with Progress(
        TextColumn("mapping z -> w"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=plain is not None,
    ) as bar:
        task = bar.add_task("pca", total=samples)
        try:
            basis, path, computed = pca_for(
                image,
                G=G,
                samples=samples,
                batch=batch,
                seed=seed,
                name=name,
                force=force,
                exact=True,
                progress=advanced,
            )
        except KeyboardInterrupt as e:  # main prints one line with this outcome
            e.outcome = "the fit stopped before its end; nothing stored (the store is as it was)"
            raise
    top = basis.var_ratio[: min(5, len(basis.var_ratio))] if basis.var_ratio is not None else None
    head = "fitted" if computed else "already in the store (use --force to refit)"
    out.print(f"PCA basis of [bold]{image}[/bold] {head}: {path}")
    if top is not None:
        k = int((basis.var_ratio.cumsum(0) < 0.9).sum()) + 1
        out.print(
            f"{basis.components.shape[0]} directions; top variance ratios "
            + ", ".join(f"{v:.3f}" for v in top.tolist())
            + f"; 90% of the variance in {k}",
            soft_wrap=True,
        )


def _plain_progress(label: str, unit: str, total: int | None, first: int = 0, every_s: float = 10.0):
    """Progress for a stderr that is not a terminal (a pipe, a log file, CI), where a live bar shows
    nothing until the end. Returns ``report(done, extra="")``, which prints one plain line such as
    ``rendering: 120/480 frames, 35.2 frames/s`` (``extra`` appended after a comma) when ``done``
    reaches another tenth of ``total``, or ``every_s`` seconds after the last line; rates count
    from the call to ``_plain_progress`` and from ``first`` (a resumed run's first step)."""
    t0 = time.perf_counter()
    state = {"tenth": (first * 10 // total) if total else 0, "said": t0}

    def report(done: int, extra: str = "") -> None:
        now = time.perf_counter()
        tenth = (done * 10 // total) if total else 0
        if tenth <= state["tenth"] and now - state["said"] < every_s:
            return
        state.update(tenth=tenth, said=now)
        rate = (done - first) / max(now - t0, 1e-9)
        line = f"{label}: {done}/{total} {unit}" if total else f"{label}: {done} {unit}"
        line += f", {rate:.1f} {unit}/s" + (f", {extra}" if extra else "")
        err.print(line, markup=False, highlight=False, soft_wrap=True)

    return report


@app.command()
def render(
    output: Path = typer.Argument(
        Path("out.mp4"), metavar="OUT", help="Output: .mp4, .webm, .gif, or a folder for PNG frames."
    ),
    motion: str = typer.Option("demo", "--motion", "-m", help="Motion model: name or path."),
    image: str = typer.Option("demo", "--image", "-i", help="Image generator: name or path."),
    frames: int = typer.Option(32, "-n", "--frames", help="Motion steps per video (any length; memory does not grow)."),
    videos: int | None = typer.Option(
        None,
        "--videos",
        "-k",
        help="Number of videos (one file each, or one grid with --grid); default 1, or one per --start latent.",
    ),
    grid: bool = typer.Option(False, "--grid", help="Tile all videos into one video."),
    seed: int = typer.Option(0, "--seed", help="Same seed, same frames (on the same machine and device)."),
    fps: float = typer.Option(12.0, "--fps", help="Frames per second of the written video."),
    truncation: float = typer.Option(1.0, "--truncation", help="Truncation psi toward the average w (1 = none)."),
    noise: str = typer.Option("fixed", "--noise", help="fixed (drawn once per video), random (every frame) or off."),
    interpolate: int = typer.Option(
        1, "--interpolate", help="K: K-1 latent in-between frames per step (the official --interpolation is 2)."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    dtype: str = typer.Option("fp32", "--dtype", help="fp32, bf16 or fp16 synthesis."),
    batch: int = typer.Option(8, "--batch", help="Frames per generator forward."),
    fmt: str | None = typer.Option(None, "--format", help="mp4, webm, gif or png (default: from OUT)."),
    classes: list[str] | None = typer.Option(
        None,
        "--class",
        help="BigGAN: class number or ImageNet name (golden_retriever); repeat or comma-separate for one per video.",
    ),
    class_to: str | None = typer.Option(
        None, "--class-to", help="BigGAN: move each video's class vector linearly to this class over the video."
    ),
    start: list[str] | None = typer.Option(
        None,
        "--start",
        help="Start the videos from latents made by `mocohd "
        "invert` (a name or file), or from a photo (inverted first); repeat for several.",
    ),
    rotate: float = typer.Option(0.0, "--rotate", help="StyleGAN3 camera: degrees per second of rotation."),
    translate: str = typer.Option("0,0", "--translate", help="StyleGAN3 camera: X,Y image widths per second."),
    shake: float = typer.Option(
        0.0,
        "--shake",
        help="StyleGAN3 camera: a smooth random shake of this many degrees "
        "(and hundredths of the image), from the seed.",
    ),
):
    """Render videos: a motion model walks the latent space of an image generator.

    An existing OUT file is replaced only when the new one is complete; a PNG folder must be new,
    empty or a previous render's frames. Ctrl-C or SIGTERM leave nothing partial."""
    try:
        shift = tuple(float(v) for v in translate.split(","))
        if len(shift) != 2:
            raise ValueError
    except ValueError:
        raise UsageError(f"--translate must be X,Y (two numbers), got {translate!r}") from None
    live = err.is_terminal  # a terminal gets a live bar; a pipe or a log file plain lines
    bar = Progress(
        TextColumn("rendering"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("frames"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not live,
    )
    task = bar.add_task("render", total=None, rate="")
    t0 = time.perf_counter()
    plain = None

    def started(total, note):  # models are loaded: from here on there is something to show
        nonlocal t0, plain
        if note:
            err.print(note)
        bar.update(task, total=total)
        bar.start()
        t0 = time.perf_counter()
        plain = None if live else _plain_progress("rendering", "frames", total)

    def advanced(n):
        bar.update(task, completed=n, rate=f"{n / max(time.perf_counter() - t0, 1e-9):.1f} frames/s")
        if plain:
            plain(n)

    try:
        config = RenderConfig(
            motion=motion,
            image=image,
            frames=frames,
            videos=videos,
            grid=grid,
            seed=seed,
            fps=fps,
            truncation=truncation,
            noise=noise,
            interpolate=interpolate,
            device=device,
            dtype=dtype,
            batch=batch,
            fmt=fmt,
            classes=classes,
            class_to=class_to,
            start=start,
            rotate=rotate,
            translate=shift,
            shake=shake,
        )
        result = render_videos(
            output,
            config,
            on_start=started,
            on_frame=advanced,
            on_note=lambda text: err.print(text, markup=False, highlight=False, soft_wrap=True),
        )
    except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM: main prints one line with this outcome
        if getattr(e, "outcome", None) is None:
            e.outcome = "nothing written"
        raise
    finally:
        bar.stop()
    elapsed = time.perf_counter() - t0
    h, w = result.size
    total = result.frames * result.videos
    for p in result.paths:
        out.print(f"wrote {p}")
    out.print(
        f"{len(result.paths)} file(s), {result.frames} frames of {w}x{h} each, "
        f"{total} frames in {elapsed:.1f} s ({total / max(elapsed, 1e-9):.1f} frames/s)"
    )


@app.command("eval")
def eval_(
    data: Path = typer.Option(..., "--data", help="The real videos: a folder of videos and/or frame folders."),
    motion: str | None = typer.Option(
        None, "--motion", "-m", help="Motion model (name or path) whose videos to score."
    ),
    image: str | None = typer.Option(None, "--image", "-i", help="Image generator it drives (default: demo)."),
    fake: Path | None = typer.Option(None, "--fake", help="Score this folder of videos instead (another system's)."),
    metrics: list[str] | None = typer.Option(
        None, "--metric", help="fvd16 (default), fvd128, fvd128-sub8, fid; repeat for several."
    ),
    videos: int | None = typer.Option(
        None, "--videos", help="Real and fake clips of FVD (default 2048, the protocol's)."
    ),
    fid_frames: str | None = typer.Option(
        None, "--fid-frames", help="Frames of FID: a number (default 50000, or what the data has) or 'all'."
    ),
    seed: int = typer.Option(
        0, "--seed", help="Seed of the real clips' offsets and of the fakes: same seed, same number."
    ),
    truncation: float = typer.Option(1.0, "--truncation", help="Truncation psi of the rendered fakes (1 = none)."),
    frame_size: int | None = typer.Option(
        None,
        "--frame-size",
        help=(
            "Square size both sides are compared at (default: the generator's resolution up to 256; with --fake, "
            "the videos' own size up to 256 when they are squares of one size, else 256)."
        ),
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    batch: int = typer.Option(8, "--batch", help="Frames per generator forward and clips per detector forward."),
    i3d: str | None = typer.Option(
        None, "--i3d", help="I3D detector: name or file (default: the store's, `mocohd fetch i3d`)."
    ),
    inception: str | None = typer.Option(
        None, "--inception", help="Inception detector: name or file (default: the store's)."
    ),
    repeat: bool = typer.Option(
        False, "--repeat", help="Small datasets: cycle through the real videos (new offsets) until --videos clips."
    ),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the results to this JSON file."),
):
    """Score generated videos against a dataset: FVD (I3D) and FID (Inception), by StyleGAN-V's protocol.

    Fakes are rendered on the fly (nothing written) from --motion and --image, or read from --fake.
    Real statistics are cached in the store, so a second evaluation only renders. Under torchrun
    every process takes its share of the videos."""
    if fid_frames is not None and fid_frames != "all":
        try:
            fid_frames = int(fid_frames)
        except ValueError:
            raise UsageError(f"--fid-frames must be a number or 'all', got {fid_frames!r}") from None
    if fake is None and motion is None:
        raise UsageError("give --motion (with --image) to render the fakes, or --fake DIR to score a folder of videos")
    json_file = _check_json_path(json_out) if json_out is not None else None
    live = err.is_terminal
    bar = Progress(
        TextColumn("{task.fields[stage]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not live,
    )
    state = {"stage": None, "t0": 0.0, "plain": None, "task": None}

    def progress(stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        unit = "frames" if stage.endswith("fid") else "clips"
        if stage != state["stage"]:  # a new stage: a new bar (and a new plain-line counter)
            state.update(stage=stage, t0=now, plain=None if live else _plain_progress(stage, unit, total))
            state["task"] = bar.add_task(stage, total=total, stage=stage, rate="")
            bar.start()
        bar.update(state["task"], completed=done, rate=f"{done / max(now - state['t0'], 1e-9):.1f} {unit}/s")
        if state["plain"]:
            state["plain"](done)

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
            batch=batch,
            frame_size=frame_size,
            i3d=i3d,
            inception=inception,
            repeat=repeat,
            progress=progress if os.environ.get("RANK", "0") == "0" else None,
            note=lambda text: err.print(text, markup=False, highlight=False, soft_wrap=True),
        )
    except KeyboardInterrupt as e:
        e.outcome = "nothing written"
        raise
    finally:
        bar.stop()
    if os.environ.get("RANK", "0") != "0":  # under torchrun, process 0 reports
        return
    # the results are kept before anything is printed: a closed stdout (`| head -1`) loses nothing
    if json_file is not None:
        try:
            atomic_write_bytes(json_file, (json.dumps([r.to_dict() for r in results], indent=1) + "\n").encode())
        except OSError as e:
            raise MocohdError(f"cannot write {json_out}: {e.strerror}") from e
    notes: list[str] = []
    folder = run_of(motion, note=notes.append) if motion is not None and fake is None else None
    if folder is not None:
        try:
            append_results(folder, results, step=None, extra={"motion": motion, "image": image or "demo"})
        except OSError as e:
            notes.append(f"could not append to {folder / 'metrics.jsonl'}: {e.strerror}")
            folder = None
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
    out.print(table)
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
    _print_notes(notes)


@app.command("invert")
def invert_(
    photos: list[Path] = typer.Argument(
        ..., metavar="PHOTO...", help="Photos (any format Pillow reads), one latent each."
    ),
    image: str = typer.Option(
        ..., "--image", "-i", help="Image generator (StyleGAN2, StyleGAN3 or BigGAN): name or path."
    ),
    name: str | None = typer.Option(None, "--name", help="Store name of the latent (default: the first photo's name)."),
    steps: int = typer.Option(1000, "--steps", help="Optimisation steps (NVIDIA's projector: 1000)."),
    space: str = typer.Option(
        "w", "--space", help="w (one w for every layer, as the projector) or w+ (one per layer: closer, less editable)."
    ),
    loss: str = typer.Option(
        "perceptual",
        "--loss",
        help="perceptual (VGG16 features; `mocohd fetch vgg16`) or pixel (MSE + multi-scale SSIM, no weights).",
    ),
    crop: str = typer.Option(
        "center", "--crop", help="center (the centred square) or none (the whole photo, squeezed to a square)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the noise maps' start and of the w noise."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    force: bool = typer.Option(False, "--force", help="Replace a stored latent of the same name."),
    classes: list[str] | None = typer.Option(
        None,
        "--class",
        help="BigGAN: the class mix starts on these classes "
        "(numbers or ImageNet names, shared equally; default: all 1000 equally).",
    ),
    truncation: float = typer.Option(
        1.0,
        "--truncation",
        help="BigGAN: the truncation psi the photo is matched at (render with the same --truncation).",
    ),
):
    """Find the latent that makes an image generator reproduce a photo, and store it (kind latent).

    NVIDIA's projector recipe: Adam over w and the noise maps from the average w, for --steps steps
    (StyleGAN3: no noise maps; BigGAN: over z and a soft mix of the classes, space w only).
    Several photos are inverted together, each on its own. Ctrl-C stops early and keeps the best
    latent so far; then `mocohd render --start NAME` animates it."""
    check_invert_options(steps, space, loss, seed=seed)
    check_crop(crop)
    if name is not None:  # given: it must be a name ('' is none: leave --name out for the photo's)
        try:
            store.check_name(name)
        except MocohdError as e:
            raise UsageError(f"--name: {e}; leave --name out to name the latent after the photo") from None
    name = store.check_name(name if name is not None else default_latent_name(photos[0]))
    dest = store.store_path("latent", name)
    if dest.exists() and not force:
        raise MocohdError(
            f"a latent named '{name}' is already in the store ({dest}): pick another --name, or replace it with --force"
        )
    for p in photos:  # headers only: a missing or unreadable photo stops us before anything loads
        probe_photo(p)
    if loss == "perceptual" and not have_vgg16():
        raise MocohdError(VGG16_MISSING)
    G = load_image_generator(image, device=device)
    check_invert_generator(G, space, classes, truncation)
    targets = torch.stack([read_photo(p, G.resolution, crop=crop) for p in photos])
    known = [photo_identity(p) for p in photos]
    net = load_vgg16(device=next(G.parameters()).device) if loss == "perceptual" else None

    plain = None if err.is_terminal else _plain_progress("inverting", "steps", steps)
    bar = Progress(
        TextColumn("inverting"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[dist]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=plain is not None,
    )
    task = bar.add_task("invert", total=steps, dist="")
    signals = {"count": 0, "which": None}

    def on_signal(signum, frame):  # the first Ctrl-C (or SIGTERM) stops after this step; a second one at once
        signals["count"] += 1
        signals["which"] = signals["which"] or signum
        if signals["count"] > 1:
            raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
        err.print(
            "stopping after this step (the best latent so far is kept; Ctrl-C again to quit without it)",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )

    def advanced(done, total, dist):
        text = f"distance {dist.mean():.4f}" if len(dist) == 1 else f"mean distance {dist.mean():.4f}"
        bar.update(task, completed=done, dist=text)
        if plain:
            plain(done, text)

    main_thread = threading.current_thread() is threading.main_thread()
    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)} if main_thread else {}
    try:
        bar.start()
        where = f"{G.identity['name']} ({G.resolution} px)"
        err.print(
            f"inverting {len(photos)} photo(s) into {where}: {steps} steps, space {space}, {loss} loss, "
            f"{next(G.parameters()).device}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        latent = invert_photos(
            G,
            targets,
            steps=steps,
            space=space,
            loss=loss,
            perceptual=net,
            seed=seed,
            progress=advanced,
            stop=lambda: signals["count"] > 0,
            photos=known,
            classes=classes,
            truncation=truncation,
        )
        latent.info["crop"] = crop
    except KeyboardInterrupt as e:
        e.outcome = getattr(e, "outcome", None) or "nothing stored"
        raise
    finally:
        bar.stop()
        for s, h in old.items():
            signal.signal(s, h)
    stored = name if force else free_latent_name(name)  # taken while it ran (another invert): the result is kept
    header = save_latent(latent, stored, overwrite=force)
    if stored != name:
        _print_notes(
            [
                f"a latent named '{name}' was stored while this one was found (another invert?); this one is "
                f"stored as '{stored}'"
            ]
        )
    name = stored
    say = partial(out.print, soft_wrap=True, markup=False, highlight=False)
    for p, d, k in zip(photos, latent.distance, latent.info["best_step"], strict=True):
        say(f"{p}: distance {d:.4f} ({loss}, best after {k} of {latent.info['steps']} steps)")
    if latent.classes is not None:  # BigGAN: its class mix
        for p, mix in zip(photos, latent.classes, strict=True):
            share, k = mix.topk(3)
            say(
                f"{p}: classes "
                + ", ".join(f"{describe_class(int(c), G.c_dim)} {v:.0%}" for v, c in zip(share, k, strict=True))
            )
    done = f"latent {name} ({len(photos)} photo(s), space {space}) -> {header.path}"
    if latent.info["stopped"]:
        e = Terminated() if signals["which"] == signal.SIGTERM else KeyboardInterrupt()
        e.outcome = f"stopped at step {latent.info['steps']}/{steps}; stored the best {done}"
        raise e
    say(f"stored {done}")
    psi = f" --truncation {truncation:g}" if G.c_dim and truncation != 1 else ""
    say(f"next: mocohd render {name}.mp4 --image {image} --start {name}{psi}")


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


def _given(ctx: typer.Context, values: dict) -> dict:
    """The options of ``values`` that the command line gave: the library takes the others
    from its config's defaults (a new run) or from the run's stored settings (a resume)."""
    sources = {k: ctx.get_parameter_source(k) for k in values}  # typer's own copy of click: compare by name
    return {k: v for k, v in values.items() if sources[k] is not None and sources[k].name != "DEFAULT"}


def _run_training(
    ctx: typer.Context, options: dict, config, trainer, describe, shown: tuple[str, ...], model: str, next_step
) -> None:
    """What `train` and `train-image` do: build ``config`` (a TrainConfig or ImageTrainConfig) of the
    options the command line gave, run ``trainer`` with a progress display (``_with_progress``:
    ``describe``, ``shown``) and print the result in two lines: where the ``model`` went, then how
    to continue an interrupted run or ``next_step(cfg)``."""
    settings = {k: v for k, v in options.items() if k not in ("ctx", "resume", "force")}
    cfg = config(**_given(ctx, settings))  # only what the command line gave: the library knows the defaults
    result = _with_progress(
        lambda on_event: trainer(cfg, resume=options["resume"], force=options["force"], on_event=on_event),
        describe,
        shown,
    )
    if not result.writer:
        return
    cfg = result.config  # the run's own settings (a name taken from the data folder, a resume's values)
    how = "interrupted" if result.interrupted else "finished"
    say = partial(out.print, soft_wrap=True)  # one line each, also in a pipe
    kept = getattr(result, "kept", None)  # --keep-best
    kept = f" (kept step {kept['step']}: {kept['criterion']} {kept['value']:.4g})" if kept else ""
    say(
        f"{how} at step {result.step}/{result.total}; "
        f"{model} [bold]{cfg.name}[/bold] -> {getattr(result, cfg.EXPORTS)}{kept}"
    )
    say(f"continue with: mocohd {ctx.info_name} --name {cfg.name} --resume" if result.interrupted else next_step(cfg))


def _with_progress(start, describe, shown) -> object:
    """Run a trainer with a progress bar (steps, it/s, the ``shown`` losses) fed by its events;
    ``describe(info)`` is the first line of the 'start' event. When stderr is not a terminal
    (a pipe, a log file), plain lines instead: a logged step at most every 10 s, the last step
    and each checkpoint (and the monitor's inversion: a line every tenth of it or 10 s)."""
    plain = not err.is_terminal
    bar = Progress(
        TextColumn("training"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TextColumn("{task.fields[losses]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=plain,
    )
    task = bar.add_task("train", total=None, rate="", losses="")
    state = {"t0": 0.0, "first": 0, "said": -1e9}

    def say(text):  # plain: one line each, however long (a log is read by programs too)
        err.print(text, soft_wrap=plain)

    def on_event(kind, info):
        if kind == "prepare":
            bar.update(task, completed=info["done"], total=info["total"], losses="decoding")
            bar.start()
        elif kind == "invert":  # the monitor's real clips, before training (plain: a line every tenth or 10 s)
            if plain:
                if "invert" not in state:
                    state["invert"] = _plain_progress("monitor: inverting", "steps", info["total"])
                state["invert"](info["done"])
            else:
                bar.update(task, completed=info["done"], total=info["total"], losses="monitor: inverting real clips")
                bar.start()
        elif kind == "note":
            say(info["text"])
        elif kind == "start":
            state.update(t0=time.perf_counter(), first=info["step"])
            where = f"{info['device']}" + (f" x {info['world']} processes" if info["world"] > 1 else "")
            say(
                f"{describe(info)}, {where}, {info['precision']}"
                + (f"; resuming at step {info['step']}" if info["step"] else "")
            )
            bar.reset(
                task, completed=info["step"], total=info["total"], rate="", losses=""
            )  # the rate and time of training alone
            bar.start()
        elif kind == "step":
            rate = (info["step"] - state["first"]) / max(time.perf_counter() - state["t0"], 1e-9)
            losses = info.get("mean", info["losses"]) if plain else info["losses"]  # plain: the logged means
            text = " ".join(f"{k}={losses[k]:.3f}" for k in shown if k in losses)
            text += f"  {state['eval']}" if state.get("eval") else ""
            text += f"  {state['monitor']}" if state.get("monitor") else ""
            bar.update(task, completed=info["step"], rate=f"{rate:.2f} it/s", losses=text)
            now = time.perf_counter()
            if plain and "mean" in info and (now - state["said"] >= 10 or info["step"] == info["total"]):
                state["said"] = now
                say(f"step {info['step']}/{info['total']}  {rate:.2f} it/s  {text}")
        elif kind == "checkpoint" and plain:
            say(f"checkpoint at step {info['step']}")
        elif kind == "sample":
            say(f"sample: {info['path']}")
        elif kind == "eval":
            text = ", ".join(f"{k} {v:.2f}" for k, v in info["values"].items())
            state["eval"] = text
            say(f"step {info['step']}: {text}")
        elif kind == "monitor":
            text = monitor_summary(info["values"])
            state["monitor"] = f"monitor {info['values']['distance']:.3f}"  # the progress line: the distance only
            say(f"step {info['step']}: {text}")

    try:
        return start(on_event)
    finally:
        bar.stop()


@app.command()
def train(
    ctx: typer.Context,
    data: Path | None = typer.Option(
        None, "--data", help="Folder of videos and/or frame folders (required for a new run)."
    ),
    image: str | None = typer.Option(
        None, "--image", "-i", help="Image generator: name or path (required for a new run)."
    ),
    name: str | None = typer.Option(
        None, "--name", help="Run name and exported motion model (default: the data folder's name)."
    ),
    domain: str = typer.Option(
        TrainConfig.domain, "--domain", help="cross (image generator trained on other data) or in."
    ),
    steps: int | None = typer.Option(
        None, "--steps", help="Total steps (one step: --g-steps motion updates + one D update)."
    ),
    epochs: int = typer.Option(
        TrainConfig.epochs, "--epochs", help="Passes over the videos, when --steps is not given."
    ),
    batch: int = typer.Option(TrainConfig.batch, "--batch", help="Global batch of clips, split across processes."),
    lr: float = typer.Option(TrainConfig.lr, "--lr", help="Adam learning rate of every network."),
    frames: int = typer.Option(TrainConfig.frames, "--frames", help="Frames per training clip."),
    time_step: int = typer.Option(TrainConfig.time_step, "--time-step", help="Take every n-th frame of the videos."),
    frame_size: int | None = typer.Option(
        None, "--frame-size", help="Training frame size (default: min(128, resolution))."
    ),
    g_steps: int = typer.Option(
        TrainConfig.g_steps, "--g-steps", help="Motion generator updates per discriminator update."
    ),
    n_pca: int | None = typer.Option(
        None, "--n-pca", help="PCA directions the motion moves along (default: min(384, w size))."
    ),
    h_dim: int = typer.Option(TrainConfig.h_dim, "--h-dim", help="LSTM hidden size."),
    noise_dim: int | None = typer.Option(
        None,
        "--noise-dim",
        help="Size of the motion noise fed at each step (default: the generator's w size, as the authors).",
    ),
    w_residual: float = typer.Option(
        TrainConfig.w_residual,
        "--w-residual",
        help="Step weight lambda (0 with --oscillators: only the oscillators move).",
    ),
    oscillators: int = typer.Option(
        TrainConfig.oscillators,
        "--oscillators",
        help="Oscillator bank of the motion model: "
        "K movements with learned periods and independent random phases (0: the authors' "
        "LSTM alone; see docs/training.md).",
    ),
    w_match: float = typer.Option(TrainConfig.w_match, "--w-match", help="Feature-matching weight (cross-domain)."),
    w_mutual: float = typer.Option(
        TrainConfig.w_mutual, "--w-mutual", help="Motion-diversity (mutual information) weight."
    ),
    w_spectrum: float = typer.Option(
        TrainConfig.w_spectrum,
        "--w-spectrum",
        help="Temporal-spectrum matching weight (0: off, as the authors; an ablation lever).",
    ),
    w_cross_spectrum: float = typer.Option(
        TrainConfig.w_cross_spectrum,
        "--w-cross-spectrum",
        help="Cross-spectral "
        "density matching weight: what moves at which rhythm, against the real "
        "clips' pixels (0: off, as the authors).",
    ),
    w_bank_energy: float = typer.Option(
        TrainConfig.w_bank_energy,
        "--w-bank-energy",
        help="Prior on the oscillator "
        "bank's step energy: the smallest movements that make the video (needs "
        "a bank: --oscillators, or an --init model's; 0: off).",
    ),
    w_bank_spread: float = typer.Option(
        TrainConfig.w_bank_spread,
        "--w-bank-spread",
        help="Prior that turns each "
        "oscillator's movement toward few PCA directions, without shrinking it "
        "(needs a bank: --oscillators, or an --init model's; 0: off).",
    ),
    gp_weight: float = typer.Option(
        TrainConfig.gp_weight, "--gp-weight", help="Gradient penalty weight of the video discriminator."
    ),
    dv_channels: int = typer.Option(
        TrainConfig.dv_channels, "--dv-channels", help="Base channels of the PatchGAN discriminators."
    ),
    dv_mbstd: int = typer.Option(
        TrainConfig.dv_mbstd,
        "--dv-mbstd",
        help="Minibatch-stddev group of the video discriminator (0: none, as the authors).",
    ),
    di_channels: int = typer.Option(
        TrainConfig.di_channels, "--di-channels", help="Base channels of the cross-domain SN-ResNet D_I."
    ),
    queue: int = typer.Option(TrainConfig.queue, "--queue", help="Contrastive queue length (cross-domain)."),
    pca_samples: int = typer.Option(
        TrainConfig.pca_samples, "--pca-samples", help="Samples of the PCA fit, when the generator has no cached basis."
    ),
    init: str | None = typer.Option(
        None,
        "--init",
        help="Fine-tune from this motion model; its architecture "
        "(--n-pca, --h-dim, --noise-dim, --w-residual, --oscillators) stays: leave those "
        "out (a different value is refused).",
    ),
    classes: list[str] | None = typer.Option(
        None,
        "--class",
        help="BigGAN: the class(es) of the fake videos, numbers or ImageNet names (default: all classes).",
    ),
    truncation: float = typer.Option(
        TrainConfig.truncation,
        "--truncation",
        help="Truncation of the fake clips (BigGAN: 0.4-1; render with the same).",
    ),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Continue the run --name (or the data folder's) from its checkpoint, "
        "with its settings; only --steps, --epochs, --device, --workers, --sample-videos, the "
        "--*-every options and --monitor, --monitor-clips, --keep-best may change.",
    ),
    force: bool = typer.Option(False, "--force", help="Start the run over if it exists."),
    seed: int = typer.Option(TrainConfig.seed, "--seed", help="Seed of every random stream."),
    device: str = typer.Option(
        TrainConfig.device, "--device", help="auto, cpu, cuda, cuda:N or mps (under torchrun: one GPU per rank)."
    ),
    precision: str = typer.Option(
        TrainConfig.precision, "--precision", help="auto (bf16 on CUDA, else fp32), fp32, bf16 or fp16."
    ),
    workers: int = typer.Option(TrainConfig.workers, "--workers", help="Data loader processes per rank."),
    save_every: int = typer.Option(
        TrainConfig.save_every, "--save-every", help="Steps between checkpoints (and motion exports)."
    ),
    sample_every: int = typer.Option(TrainConfig.sample_every, "--sample-every", help="Steps between sample videos."),
    sample_videos: int = typer.Option(TrainConfig.sample_videos, "--sample-videos", help="Videos in each sample grid."),
    log_every: int = typer.Option(
        TrainConfig.log_every,
        "--log-every",
        help="Steps between metric lines (and progress lines when not on a terminal).",
    ),
    eval_every: int = typer.Option(
        TrainConfig.eval_every,
        "--eval-every",
        help="Steps between fvd16 evaluations on the run's data (0: none; needs `mocohd fetch i3d`).",
    ),
    eval_videos: int = typer.Option(
        TrainConfig.eval_videos, "--eval-videos", help="Real and fake clips of each --eval-every evaluation."
    ),
    monitor: bool = typer.Option(
        TrainConfig.monitor,
        "--monitor/--no-monitor",
        help="Measure the motion against the real clips at every checkpoint (metrics.jsonl, progress line).",
    ),
    monitor_clips: int = typer.Option(
        TrainConfig.monitor_clips,
        "--monitor-clips",
        help="In-domain, experimental: "
        "real clips inverted into w once, for the monitor's per-direction comparison "
        "(0: none).",
    ),
    keep_best: bool = typer.Option(
        TrainConfig.keep_best,
        "--keep-best/--no-keep-best",
        help="Export the checkpoint "
        "closest to the real clips (monitor distance, or fvd16 with --eval-every) instead of the latest.",
    ),
):
    """Train a motion generator on videos (MoCoGAN-HD); torchrun runs it on many GPUs."""
    _run_training(
        ctx,
        locals(),
        TrainConfig,
        train_motion,
        shown=("G_video", "G_image", "D_video_real", "D_image_real", "mutual"),
        describe=lambda info: (
            f"run [bold]{info['run'].name}[/bold] ({info['run']}): {info['domain']}-domain, "
            f"{info['videos']} videos, {info['n_pca']} PCA directions, "
            f"{info['frame_size']} px frames, {info['per_epoch']} steps per epoch"
        ),
        model="motion model",
        next_step=lambda cfg: f"render with: mocohd render --motion {cfg.name} --image {cfg.image} out.mp4",
    )


@app.command("train-image")
def train_image(
    ctx: typer.Context,
    data: Path | None = typer.Option(
        None, "--data", help="Folder of images, frame folders and/or videos (required for a new run)."
    ),
    resolution: int | None = typer.Option(
        None, "--resolution", "-r", help="Image size, a power of two (required for a new run)."
    ),
    name: str | None = typer.Option(
        None, "--name", help="Run and exported generator name (default: the data folder's name)."
    ),
    steps: int = typer.Option(
        ImageTrainConfig.steps, "--steps", help="Training steps (one D and one G update on one global batch)."
    ),
    batch: int = typer.Option(ImageTrainConfig.batch, "--batch", help="Global batch, split across processes."),
    lr: float = typer.Option(ImageTrainConfig.lr, "--lr", help="Adam learning rate (betas 0, 0.99)."),
    r1_gamma: float | None = typer.Option(
        None, "--r1-gamma", help="R1 weight (default: 0.0002 x resolution^2 / batch)."
    ),
    r1_every: int = typer.Option(
        ImageTrainConfig.r1_every, "--r1-every", help="Steps between (lazy) R1 regularisations."
    ),
    ema_kimg: float = typer.Option(
        ImageTrainConfig.ema_kimg, "--ema-kimg", help="Half-life of the generator average, in thousands of images."
    ),
    ema_rampup: float = typer.Option(
        ImageTrainConfig.ema_rampup,
        "--ema-rampup",
        help="Early half-life cap, as a fraction of the images seen (0: off).",
    ),
    augment: bool = typer.Option(
        ImageTrainConfig.augment, "--augment/--no-augment", help="DiffAugment (colour, translation, cut-out)."
    ),
    channel_base: int = typer.Option(
        ImageTrainConfig.channel_base, "--channel-base", help="Channels at resolution r: min(base / r, max)."
    ),
    channel_max: int = typer.Option(ImageTrainConfig.channel_max, "--channel-max", help="Largest channel count."),
    mapping_layers: int = typer.Option(
        ImageTrainConfig.mapping_layers, "--mapping-layers", help="Depth of the mapping network."
    ),
    w_dim: int = typer.Option(ImageTrainConfig.w_dim, "--w-dim", help="Size of z and w."),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Continue the run from its checkpoint, with its settings; only "
        "--steps, --device, --workers and the --*-every options may change.",
    ),
    force: bool = typer.Option(False, "--force", help="Start the run over if it exists."),
    seed: int = typer.Option(ImageTrainConfig.seed, "--seed", help="Seed of every random stream."),
    device: str = typer.Option(ImageTrainConfig.device, "--device", help="auto, cpu, cuda, cuda:N or mps."),
    precision: str = typer.Option(
        ImageTrainConfig.precision, "--precision", help="auto (bf16 on CUDA, else fp32), fp32 or bf16."
    ),
    workers: int = typer.Option(ImageTrainConfig.workers, "--workers", help="Data loader processes per rank."),
    save_every: int = typer.Option(
        ImageTrainConfig.save_every, "--save-every", help="Steps between checkpoints (and exports)."
    ),
    sample_every: int = typer.Option(
        ImageTrainConfig.sample_every, "--sample-every", help="Steps between sample grids."
    ),
    log_every: int = typer.Option(
        ImageTrainConfig.log_every,
        "--log-every",
        help="Steps between metric lines (and progress lines when not on a terminal).",
    ),
):
    """Train a StyleGAN2 image generator on images or video frames (in-domain work)."""
    _run_training(
        ctx,
        locals(),
        ImageTrainConfig,
        train_images,
        shown=("D_real", "D_fake", "G"),
        describe=lambda info: (
            f"image run [bold]{info['run'].name}[/bold]: {info['images']} images, "
            f"generator {info['parameters']:,} parameters, R1 gamma {info['gamma']:.4g}"
        ),
        model="image generator",
        next_step=lambda cfg: (
            f"next: mocohd pca --image {cfg.name}; mocohd train --data {cfg.data} --image {cfg.name} --domain in"
        ),
    )


def _on_sigterm(signum, frame):
    raise Terminated()


def _interrupt_behind(e: BaseException | None) -> KeyboardInterrupt | None:
    """The KeyboardInterrupt that caused ``e``: typer turns one into a silent SystemExit(130)."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, KeyboardInterrupt):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the app, turning errors into one line + exit 1 (2 for usage
    errors), Ctrl-C into one line + exit 130 and SIGTERM into one line + exit 143. The line says
    what a command kept when it tells (an ``outcome`` on the interrupt)."""
    global _debug
    argv = list(sys.argv[1:] if argv is None else argv)
    _debug = _debug or "--debug" in argv
    old_term = None  # a SIGTERM ignored by whoever started us stays ignored
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        old_term = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        try:
            app(args=argv, prog_name="mocohd", standalone_mode=True)
        except SystemExit as e:
            stopped = _interrupt_behind(e) if e.code == 130 else None
            if stopped is None:
                raise
            raise stopped from None
    except MocohdError as e:
        if _debug:
            raise
        err.print(f"[red]error:[/red] {e}", soft_wrap=True)
        sys.exit(2 if isinstance(e, UsageError) else 1)
    except KeyboardInterrupt as e:
        what = "terminated" if isinstance(e, Terminated) else "interrupted"
        outcome = getattr(e, "outcome", None)
        err.print(f"{what}: {outcome}" if outcome else what, markup=False, highlight=False, soft_wrap=True)
        sys.exit(143 if isinstance(e, Terminated) else 130)
    except Exception as e:  # a bug or an unanticipated failure: still one line
        if _debug:
            raise
        err.print(f"[red]error:[/red] {type(e).__name__}: {e} (run with --debug for the traceback)", soft_wrap=True)
        sys.exit(1)
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
