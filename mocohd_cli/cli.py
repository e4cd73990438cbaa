"""The ``mocohd`` command line: a thin Typer layer over the library.

Every command parses its options, calls one library function and prints the
result. Failures the user can fix raise ``MocohdError`` and become one line on
stderr with exit code 1; ``--debug`` (or ``MOCOHD_DEBUG=1``) shows tracebacks.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from . import __version__, store
from .errors import MocohdError, UsageError

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
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
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
    from .formats.canonical import read_header

    table = Table(title=f"models  (store: {store.home()})", title_justify="left")
    for col in ("name", "kind", "family", "res", "where", "description"):
        table.add_column(col, overflow="fold")
    for e in store.registry():
        fetched = (store.home() / e.kind / f"{e.name}.safetensors").is_file()
        where = "shipped" if e.shipped else f"hub: {e.repo_id}" + (" [green](in store)[/green]" if fetched else "")
        aliases = f" ({', '.join(e.aliases)})" if e.aliases else ""
        table.add_row(e.name + aliases, e.kind, e.family, str(e.resolution or ""), where, e.description)
    for kind, name, path in store.list_store():
        try:
            h = read_header(path)
            res, family = str(h.config.get("resolution", "")), h.family
        except MocohdError:
            res, family = "", "[red]unreadable[/red]"
        table.add_row(name, kind, family, res, f"store ({_size(path.stat().st_size)})", "")
    out.print(table)


@app.command()
def info(
    name: str = typer.Argument(..., help="Model name or path (.safetensors, rosinality .pt, NVIDIA .pkl)."),
    kind: Optional[str] = typer.Option(None, "--kind", help="image, motion or pca, when a name has several."),
):
    """What a model is: kind, family, resolution, latent size, parameters, provenance, sha256."""
    from .formats.canonical import KINDS
    from .models import describe

    if kind is not None and kind not in KINDS:
        raise MocohdError(f"--kind must be one of {', '.join(KINDS)}")
    m = describe(name, kind=kind)
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
        rows.append(("latent", f"z {cfg['z_dim']} (truncated normal), {cfg['num_classes']} classes "
                               f"(embedding {cfg['embed_dim']})"))
        rows.append(("channels", f"width {cfg['channel_width']}, {len(cfg['layers'])} blocks, "
                                 f"self-attention before block {cfg['attention']}, {cfg['n_stats']} truncation statistics"))
    if "channel_base" in cfg:
        rows.append(("channels", f"base {cfg['channel_base']}, max {cfg['channel_max']}, mapping layers {cfg.get('mapping_layers')}"))
    if m.kind == "motion" and "n_pca" in cfg:
        rows.append(("motion", f"w {cfg.get('w_dim')}, {cfg['n_pca']} PCA directions, LSTM {cfg.get('h_dim')}, "
                               f"step weight {cfg.get('w_residual')}"))
    if m.kind in ("motion", "pca"):
        who = cfg.get("image_name")
        rows.append(("trained with" if m.kind == "motion" else "fitted on",
                     f"{who} (weights {cfg['image_sha256'][:12]})" if who and cfg.get("image_sha256") else "unknown"))
    rows.append(("parameters", f"{m.parameters:,}"))
    labels = {"format": "source format", "file": "original file", "file_sha256": "original sha256"}
    rows += [(labels.get(k, f"source {k}"), str(v)) for k, v in sorted(m.source.items())] or [("source", "-")]
    rows += [("weights sha256", m.weights_sha256), ("file sha256", m.file_sha256)]
    for k, v in rows:
        table.add_row(k, str(v))
    out.print(table)


@app.command("import")
def import_(
    path: Path = typer.Argument(..., help="File to import: rosinality .pt, NVIDIA .pkl or mocohd .safetensors."),
    name: str = typer.Option(..., "--name", help="Name to store it under."),
    kind: Optional[str] = typer.Option(None, "--kind", help="Force the kind (image); auto-detected by default."),
    force: bool = typer.Option(False, "--force", help="Replace a model of the same name in the store."),
    pca: Optional[Path] = typer.Option(None, "--pca", help="PCA folder (pca_comp.npy, pca_stdev.npy) of an official motion checkpoint."),
    image: Optional[str] = typer.Option(None, "--image", help="Image generator a motion model or PCA basis belongs to."),
    w_residual: float = typer.Option(0.2, "--w-residual", help="Step weight lambda of an official motion checkpoint (not stored in it)."),
):
    """Convert a local weight file (or an official PCA folder) to the canonical format and add it to the store."""
    from .formats.canonical import KINDS
    from .models import import_model

    if kind is not None and kind not in KINDS:
        raise MocohdError(f"--kind must be one of {', '.join(KINDS)}")
    with err.status(f"importing {path.name}..."):
        h = import_model(path, name, kind=kind, overwrite=force, pca=pca, image=image, w_residual=w_residual)
    what = f"{h.config['resolution']} px" if "resolution" in h.config else f"w {h.config.get('w_dim', '?')}"
    out.print(f"imported {h.kind} model [bold]{name}[/bold] ({h.family}, {what}) -> {h.path}")


@app.command()
def fetch(
    target: str = typer.Argument(..., metavar="NAME|hf://OWNER/REPO/PATH", help="A registry name (see `mocohd list`) or any Hub file."),
    name: Optional[str] = typer.Option(None, "--name", help="Store name (default: the registry name or the file name)."),
    revision: Optional[str] = typer.Option(None, "--revision", help="Branch, tag or commit on the Hub."),
    force: bool = typer.Option(False, "--force", help="Download and convert again even if the model is in the store."),
):
    """Download a model from the Hugging Face Hub, verify it, convert it and put it in the store."""
    from .hub import fetch as fetch_model

    h, downloaded = fetch_model(target, name=name, revision=revision, force=force)
    src = h.source
    what = "fetched" if downloaded else "already in the store (use --force to fetch again)"
    out.print(f"{h.kind} model [bold]{h.path.stem}[/bold] {what}: {h.path}")
    out.print(f"from {src.get('repo')}/{src.get('file')} @ {(src.get('commit') or src.get('revision') or '?')[:12]}, "
              f"sha256 {str(src.get('file_sha256', ''))[:16]}...")


@app.command()
def push(
    motion: str = typer.Argument(..., help="Motion model to share: name or path."),
    repo: str = typer.Option(..., "--repo", help="Hub repo OWNER/NAME (created if needed)."),
    private: bool = typer.Option(False, "--private", help="Create the repo as private."),
    samples: Optional[list[Path]] = typer.Option(None, "--sample", help="A sample video or image to upload with it (repeatable)."),
    license: str = typer.Option("other", "--license", help="Licence for the model card metadata."),
    message: Optional[str] = typer.Option(None, "--message", help="Commit message."),
):
    """Share a motion model on the Hugging Face Hub, with a generated model card."""
    from .hub import push as push_model

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
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .data import prepare as prepare_data

    if frames < 1 or time_step < 1 or frame_size < 4:
        raise MocohdError("--frames and --time-step must be positive and --frame-size at least 4")
    with Progress(TextColumn("decoding videos"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err, transient=True) as bar:
        task = bar.add_task("prepare", total=None)
        info = prepare_data(data, frame_size=frame_size, min_frames=(frames - 1) * time_step + 1, force=force,
                            progress=lambda done, total: bar.update(task, completed=done, total=total))
    out.print(("reused the clip cache: " if info.reused else "prepared: ") + info.summary())


@app.command()
def pca(
    image: str = typer.Option("demo", "--image", help="Image generator: name or path."),
    samples: int = typer.Option(1_000_000, "--samples", help="Number of z samples (the official recipe uses 1,000,000)."),
    batch: int = typer.Option(4096, "--batch", help="Samples per mapping-network forward."),
    seed: int = typer.Option(0, "--seed", help="Seed of the z samples: same seed, same basis."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    name: Optional[str] = typer.Option(None, "--name", help="Store name (default: the generator's name)."),
    force: bool = typer.Option(False, "--force", help="Refit even if the store has a basis for this generator."),
):
    """Fit the latent PCA basis of an image generator and store it (cached per generator)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .models import load_image_generator
    from .pca import pca_for

    G = load_image_generator(image, device=device)
    with Progress(TextColumn("mapping z -> w"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err, transient=True) as bar:
        task = bar.add_task("pca", total=samples)
        basis, path, computed = pca_for(image, G=G, samples=samples, batch=batch, seed=seed, name=name, force=force, exact=True,
                                        progress=lambda n: bar.update(task, completed=n))
    top = basis.var_ratio[: min(5, len(basis.var_ratio))] if basis.var_ratio is not None else None
    head = "fitted" if computed else "already in the store (use --force to refit)"
    out.print(f"PCA basis of [bold]{image}[/bold] {head}: {path}")
    if top is not None:
        k = int((basis.var_ratio.cumsum(0) < 0.9).sum()) + 1
        out.print(f"{basis.components.shape[0]} directions; top variance ratios "
                  + ", ".join(f"{v:.3f}" for v in top.tolist()) + f"; 90% of the variance in {k}")


@app.command()
def render(
    output: Path = typer.Argument(Path("out.mp4"), metavar="OUT", help="Output: .mp4, .webm, .gif, or a folder for PNG frames."),
    motion: str = typer.Option("demo", "--motion", "-m", help="Motion model: name or path."),
    image: str = typer.Option("demo", "--image", "-i", help="Image generator: name or path."),
    frames: int = typer.Option(32, "-n", "--frames", help="Motion steps per video (any length; memory does not grow)."),
    videos: int = typer.Option(1, "--videos", "-k", help="Number of videos (one file each, or one grid with --grid)."),
    grid: bool = typer.Option(False, "--grid", help="Tile all videos into one video."),
    seed: int = typer.Option(0, "--seed", help="Same seed, same frames (on the same machine and device)."),
    fps: float = typer.Option(12.0, "--fps", help="Frames per second of the written video."),
    truncation: float = typer.Option(1.0, "--truncation", help="Truncation psi toward the average w (1 = none)."),
    noise: str = typer.Option("fixed", "--noise", help="fixed (drawn once per video), random (every frame) or off."),
    interpolate: int = typer.Option(1, "--interpolate", help="K: K-1 latent in-between frames per step (the official --interpolation is 2)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    dtype: str = typer.Option("fp32", "--dtype", help="fp32, bf16 or fp16 synthesis."),
    batch: int = typer.Option(8, "--batch", help="Frames per generator forward."),
    fmt: Optional[str] = typer.Option(None, "--format", help="mp4, webm, gif or png (default: from OUT)."),
    classes: Optional[list[str]] = typer.Option(None, "--class", help="BigGAN: class number or ImageNet name "
                                                "(golden_retriever); repeat or comma-separate for one per video."),
    class_to: Optional[str] = typer.Option(None, "--class-to", help="BigGAN: move each video's class vector "
                                           "linearly to this class over the video."),
):
    """Render videos: a motion model walks the latent space of an image generator."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .render import render as render_videos

    bar = Progress(TextColumn("rendering"), BarColumn(), MofNCompleteColumn(), TextColumn("frames"),
                   TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), console=err, transient=True)
    task = bar.add_task("render", total=None, rate="")
    t0 = time.perf_counter()

    def started(total, note):  # models are loaded: from here on there is something to show
        nonlocal t0
        if note:
            err.print(note)
        bar.update(task, total=total)
        bar.start()
        t0 = time.perf_counter()

    def advanced(n):
        bar.update(task, completed=n, rate=f"{n / max(time.perf_counter() - t0, 1e-9):.1f} frames/s")

    try:
        result = render_videos(output, motion=motion, image=image, frames=frames, videos=videos, grid=grid, seed=seed,
                               fps=fps, truncation=truncation, noise=noise, interpolate=interpolate, device=device,
                               dtype=dtype, batch=batch, fmt=fmt, on_start=started, on_frame=advanced,
                               classes=classes, class_to=class_to)
    finally:
        bar.stop()
    elapsed = time.perf_counter() - t0
    h, w = result.size
    total = result.frames * videos
    for p in result.paths:
        out.print(f"wrote {p}")
    out.print(f"{len(result.paths)} file(s), {result.frames} frames of {w}x{h} each, "
              f"{total} frames in {elapsed:.1f} s ({total / max(elapsed, 1e-9):.1f} frames/s)")


def _run_training(start, describe, shown) -> object:
    """Run a trainer with a progress bar (steps, it/s, the ``shown`` losses) fed by its events;
    ``describe(info)`` is the first line of the 'start' event."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    bar = Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                   TextColumn("{task.fields[losses]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                   console=err, transient=True)
    task = bar.add_task("train", total=None, rate="", losses="")
    state = {"t0": 0.0, "first": 0}

    def on_event(kind, info):
        if kind == "prepare":
            bar.update(task, completed=info["done"], total=info["total"], losses="decoding")
            bar.start()
        elif kind == "note":
            err.print(info["text"])
        elif kind == "start":
            state.update(t0=time.perf_counter(), first=info["step"])
            where = f"{info['device']}" + (f" x {info['world']} processes" if info["world"] > 1 else "")
            err.print(f"{describe(info)}, {where}, {info['precision']}"
                      + (f"; resuming at step {info['step']}" if info["step"] else ""))
            bar.update(task, completed=info["step"], total=info["total"], losses="")
            bar.start()
        elif kind == "step":
            rate = (info["step"] - state["first"]) / max(time.perf_counter() - state["t0"], 1e-9)
            bar.update(task, completed=info["step"], rate=f"{rate:.2f} it/s",
                       losses=" ".join(f"{k}={info['losses'][k]:.3f}" for k in shown if k in info["losses"]))
        elif kind == "sample":
            bar.console.print(f"sample: {info['path']}")

    try:
        return start(on_event)
    finally:
        bar.stop()


@app.command()
def train(
    data: Optional[Path] = typer.Option(None, "--data", help="Folder of videos and/or frame folders (required for a new run)."),
    image: Optional[str] = typer.Option(None, "--image", "-i", help="Image generator: name or path (required for a new run)."),
    name: Optional[str] = typer.Option(None, "--name", help="Run name and exported motion model (default: the data folder's name)."),
    domain: str = typer.Option("cross", "--domain", help="cross (image generator trained on other data) or in."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Total steps (one step: --g-steps motion updates + one D update)."),
    epochs: int = typer.Option(5, "--epochs", help="Passes over the videos, when --steps is not given."),
    batch: int = typer.Option(16, "--batch", help="Global batch of clips, split across processes."),
    lr: float = typer.Option(1e-4, "--lr", help="Adam learning rate of every network."),
    frames: int = typer.Option(16, "--frames", help="Frames per training clip."),
    time_step: int = typer.Option(2, "--time-step", help="Take every n-th frame of the videos."),
    frame_size: Optional[int] = typer.Option(None, "--frame-size", help="Training frame size (default: min(128, resolution))."),
    g_steps: int = typer.Option(5, "--g-steps", help="Motion generator updates per discriminator update."),
    n_pca: Optional[int] = typer.Option(None, "--n-pca", help="PCA directions the motion moves along (default: min(384, w size))."),
    h_dim: int = typer.Option(384, "--h-dim", help="LSTM hidden size."),
    w_residual: float = typer.Option(0.2, "--w-residual", help="Step weight lambda."),
    w_match: float = typer.Option(1.0, "--w-match", help="Feature-matching weight (cross-domain)."),
    w_mutual: float = typer.Option(1.0, "--w-mutual", help="Motion-diversity (mutual information) weight."),
    gp_weight: float = typer.Option(10.0, "--gp-weight", help="Gradient penalty weight of the video discriminator."),
    dv_channels: int = typer.Option(64, "--dv-channels", help="Base channels of the PatchGAN discriminators."),
    di_channels: int = typer.Option(96, "--di-channels", help="Base channels of the cross-domain SN-ResNet D_I."),
    queue: int = typer.Option(4096, "--queue", help="Contrastive queue length (cross-domain)."),
    pca_samples: int = typer.Option(1_000_000, "--pca-samples", help="Samples of the PCA fit, when the generator has no cached basis."),
    init: Optional[str] = typer.Option(None, "--init", help="Fine-tune from this motion model."),
    classes: Optional[list[str]] = typer.Option(None, "--class", help="BigGAN: the class(es) of the fake videos, "
                                                "numbers or ImageNet names (default: all classes)."),
    truncation: float = typer.Option(1.0, "--truncation", help="Truncation of the fake clips (BigGAN: 0.4-1; render with the same)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run --name (or the data folder's) from its checkpoint."),
    force: bool = typer.Option(False, "--force", help="Start the run over if it exists."),
    seed: int = typer.Option(0, "--seed", help="Seed of every random stream."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps (under torchrun: one GPU per rank)."),
    precision: str = typer.Option("auto", "--precision", help="auto (bf16 on CUDA, else fp32), fp32, bf16 or fp16."),
    workers: int = typer.Option(2, "--workers", help="Data loader processes per rank."),
    save_every: int = typer.Option(1000, "--save-every", help="Steps between checkpoints (and motion exports)."),
    sample_every: int = typer.Option(1000, "--sample-every", help="Steps between sample videos."),
    log_every: int = typer.Option(10, "--log-every", help="Steps between metric lines."),
):
    """Train a motion generator on videos (MoCoGAN-HD); torchrun runs it on many GPUs."""
    from .train import TrainConfig
    from .train import train as run_training

    for opt, v in (("--save-every", save_every), ("--sample-every", sample_every), ("--log-every", log_every),
                   ("--epochs", epochs), ("--workers", workers + 1)):
        if v < 1:
            raise MocohdError(f"{opt} must be positive")
    if steps is not None and steps < 1:
        raise MocohdError("--steps must be positive")
    cfg = TrainConfig(data=str(data) if data else None, image=image, name=name, domain=domain, steps=steps,
                      epochs=epochs, batch=batch, lr=lr, frames=frames, time_step=time_step, frame_size=frame_size,
                      g_steps=g_steps, n_pca=n_pca, h_dim=h_dim, w_residual=w_residual, w_match=w_match, w_mutual=w_mutual,
                      gp_weight=gp_weight, dv_channels=dv_channels, di_channels=di_channels, queue=queue, init=init,
                      seed=seed, device=device, precision=precision, workers=workers, save_every=save_every,
                      sample_every=sample_every, log_every=log_every, pca_samples=pca_samples,
                      classes=classes or None, truncation=truncation)

    def started(info):
        return (f"run [bold]{info['run'].name}[/bold] ({info['run']}): {info['domain']}-domain, {info['videos']} videos, "
                f"{info['n_pca']} PCA directions, {info['frame_size']} px frames, {info['per_epoch']} steps per epoch")

    result = _run_training(lambda on_event: run_training(cfg, resume=resume, force=force, on_event=on_event), started,
                           ("G_video", "G_image", "D_video_real", "D_image_real", "mutual"))
    if not result.writer:
        return
    how = "interrupted" if result.interrupted else "finished"
    out.print(f"{how} at step {result.step}/{result.total}; motion model [bold]{cfg.name}[/bold] -> {result.motion}")
    if result.interrupted:
        out.print(f"continue with: mocohd train --name {cfg.name} --resume")
    else:
        out.print(f"render with: mocohd render --motion {cfg.name} --image {cfg.image} out.mp4")


@app.command("train-image")
def train_image(
    data: Optional[Path] = typer.Option(None, "--data", help="Folder of images, frame folders and/or videos (required for a new run)."),
    resolution: Optional[int] = typer.Option(None, "--resolution", "-r", help="Image size, a power of two (required for a new run)."),
    name: Optional[str] = typer.Option(None, "--name", help="Run and exported generator name (default: the data folder's name)."),
    steps: int = typer.Option(10000, "--steps", help="Training steps (one D and one G update on one global batch)."),
    batch: int = typer.Option(32, "--batch", help="Global batch, split across processes."),
    lr: float = typer.Option(0.0025, "--lr", help="Adam learning rate (betas 0, 0.99)."),
    r1_gamma: Optional[float] = typer.Option(None, "--r1-gamma", help="R1 weight (default: 0.0002 x resolution^2 / batch)."),
    ema_kimg: float = typer.Option(10.0, "--ema-kimg", help="Half-life of the generator average, in thousands of images."),
    ema_rampup: float = typer.Option(0.05, "--ema-rampup", help="Early half-life cap, as a fraction of the images seen (0: off)."),
    augment: bool = typer.Option(True, "--augment/--no-augment", help="DiffAugment (colour, translation, cut-out)."),
    channel_base: int = typer.Option(16384, "--channel-base", help="Channels at resolution r: min(base / r, max)."),
    channel_max: int = typer.Option(512, "--channel-max", help="Largest channel count."),
    mapping_layers: int = typer.Option(8, "--mapping-layers", help="Depth of the mapping network."),
    w_dim: int = typer.Option(512, "--w-dim", help="Size of z and w."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run from its checkpoint."),
    force: bool = typer.Option(False, "--force", help="Start the run over if it exists."),
    seed: int = typer.Option(0, "--seed", help="Seed of every random stream."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    precision: str = typer.Option("auto", "--precision", help="auto (bf16 on CUDA, else fp32), fp32 or bf16."),
    workers: int = typer.Option(2, "--workers", help="Data loader processes per rank."),
    save_every: int = typer.Option(1000, "--save-every", help="Steps between checkpoints (and exports)."),
    sample_every: int = typer.Option(1000, "--sample-every", help="Steps between sample grids."),
    log_every: int = typer.Option(10, "--log-every", help="Steps between metric lines."),
):
    """Train a StyleGAN2 image generator on images or video frames (in-domain work)."""
    from .train.image import ImageTrainConfig
    from .train.image import train_image as run_training

    for opt, v in (("--steps", steps), ("--save-every", save_every), ("--sample-every", sample_every),
                   ("--log-every", log_every), ("--workers", workers + 1)):
        if v < 1:
            raise MocohdError(f"{opt} must be positive")
    cfg = ImageTrainConfig(data=str(data) if data else None, resolution=resolution, name=name, steps=steps, batch=batch,
                           lr=lr, r1_gamma=r1_gamma, ema_kimg=ema_kimg, ema_rampup=ema_rampup or None,
                           augment=augment, channel_base=channel_base,
                           channel_max=channel_max, mapping_layers=mapping_layers, w_dim=w_dim, seed=seed, device=device,
                           precision=precision, workers=workers, save_every=save_every, sample_every=sample_every,
                           log_every=log_every)
    def started(info):
        return (f"image run [bold]{info['run'].name}[/bold]: {info['images']} images, generator "
                f"{info['parameters']:,} parameters, R1 gamma {info['gamma']:.4g}")

    result = _run_training(lambda on_event: run_training(cfg, resume=resume, force=force, on_event=on_event), started,
                           ("D_real", "D_fake", "G"))
    if not result.writer:
        return
    how = "interrupted" if result.interrupted else "finished"
    out.print(f"{how} at step {result.step}/{result.total}; image generator [bold]{cfg.name}[/bold] -> {result.image}")
    if result.interrupted:
        out.print(f"continue with: mocohd train-image --name {cfg.name} --resume")
    else:
        out.print(f"next: mocohd pca --image {cfg.name}; mocohd train --data {cfg.data} --image {cfg.name} --domain in")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the app, turning errors into one line + exit 1."""
    global _debug
    argv = list(sys.argv[1:] if argv is None else argv)
    _debug = _debug or "--debug" in argv
    try:
        app(args=argv, prog_name="mocohd", standalone_mode=True)
    except MocohdError as e:
        if _debug:
            raise
        err.print(f"[red]error:[/red] {e}", soft_wrap=True)
        sys.exit(2 if isinstance(e, UsageError) else 1)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as e:  # a bug or an unanticipated failure: still one line
        if _debug:
            raise
        err.print(f"[red]error:[/red] {type(e).__name__}: {e} (run with --debug for the traceback)", soft_wrap=True)
        sys.exit(1)
