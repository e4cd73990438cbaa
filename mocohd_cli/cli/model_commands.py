"""The commands of the model store: `mocohd list`, `info`, `import`, `fetch`, `push` and `pca`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from .. import store
from ..errors import UsageError
from ..formats.canonical import KINDS
from ..hub import fetch as fetch_model, push as push_model
from ..loaders import describe, import_model, load_image_generator
from ..loaders.listing import info_rows, kinds_of, listed_models
from ..loaders.pca_bases import pca_for
from ..motion import MotionConfig
from .console import err, out, print_notes, shadow_notes
from .options import Device, Force, Image, Name, Seed
from .progress import Counter

ModelName = Annotated[str, typer.Argument(help="Model name or path (.safetensors, rosinality .pt, NVIDIA .pkl).")]
InfoKind = Annotated[
    str | None,
    typer.Option(
        "--kind",
        help="image, motion, pca, i3d, inception, vgg16, latent or encoder: show only that kind (default: every "
        "kind the name has, e.g. the demo image generator and the demo motion model).",
    ),
]
ImportPath = Annotated[
    Path,
    typer.Argument(
        help="File to import: rosinality .pt, NVIDIA .pkl, BigGAN .bin, I3D TorchScript .pt, "
        "pytorch-fid Inception .pth or mocohd .safetensors.",
    ),
]
ImportKind = Annotated[
    str | None,
    typer.Option(
        "--kind", help="Force the kind (image, motion, pca, i3d, inception, vgg16); auto-detected by default."
    ),
]
PCAFolder = Annotated[
    Path | None,
    typer.Option("--pca", help="PCA folder (pca_comp.npy, pca_stdev.npy) of an official motion checkpoint."),
]
WResidual = Annotated[
    float, typer.Option("--w-residual", help="Step weight lambda of an official motion checkpoint (not stored in it).")
]
FetchTarget = Annotated[
    str,
    typer.Argument(metavar="NAME|hf://OWNER/REPO/PATH", help="A registry name (see `mocohd list`) or any Hub file."),
]
Revision = Annotated[str | None, typer.Option("--revision", help="Branch, tag or commit on the Hub.")]
PushMotion = Annotated[str, typer.Argument(help="Motion model to share: name or path.")]
Repo = Annotated[str, typer.Option("--repo", help="Hub repo OWNER/NAME (created if needed).")]
Private = Annotated[bool, typer.Option("--private", help="Create the repo as private.")]
Samples = Annotated[
    list[Path] | None, typer.Option("--sample", help="A sample video or image to upload with it (repeatable).")
]
License = Annotated[str, typer.Option("--license", help="Licence for the model card metadata.")]
Message = Annotated[str | None, typer.Option("--message", help="Commit message.")]
PCASamples = Annotated[int, typer.Option("--samples", help="Number of z samples (the official recipe uses 1,000,000).")]
PCABatch = Annotated[int, typer.Option("--batch", help="Samples per mapping-network forward.")]


def list_models():
    """Known models (the registry in weights/) and what is in the local store."""
    # Two lines per model, so that any terminal width reads well: the short
    # columns, then aliases / Hub repo / description, cut to the width with an ellipsis.
    rows = [(m.name, m.kind, m.family, m.resolution, m.where, m.detail) for m in listed_models()]
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


def info(name: ModelName, kind: InfoKind = None):
    """What a model is: kind, family, resolution, latent size, parameters, provenance, sha256."""
    if kind is not None and kind not in KINDS:
        raise UsageError(f"--kind must be one of {', '.join(KINDS)}")
    kinds = [kind] if kind is not None else kinds_of(name)  # a name: every kind it resolves to
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


def import_(
    path: ImportPath,
    name: Name("Name to store it under (detectors: i3d, inception are the defaults eval uses).", required=True),
    kind: ImportKind = None,
    force: Force("Replace a model of the same name in the store.") = False,
    pca: PCAFolder = None,
    image: Image("Image generator a motion model or PCA basis belongs to.", short=False) = None,
    w_residual: WResidual = MotionConfig.w_residual,
):
    """Convert a local weight file (or an official PCA folder) to the canonical format and add it to the store."""
    if kind is not None and kind not in KINDS:
        raise UsageError(f"--kind must be one of {', '.join(KINDS)}")
    with err.status(f"importing {path.name}..."), shadow_notes() as notes:
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
    print_notes(notes or [store.shadow_note(h.kind, name, h.source)])


def fetch(
    target: FetchTarget,
    name: Name("Store name (default: the registry name or the file name).") = None,
    revision: Revision = None,
    force: Force("Download and convert again even if the model is in the store.") = False,
):
    """Download a model from the Hugging Face Hub, verify it, convert it and put it in the store."""
    with shadow_notes() as notes:
        h, downloaded = fetch_model(target, name=name, revision=revision, force=force)
    src = h.source
    what = "fetched" if downloaded else "already in the store (use --force to fetch again)"
    out.print(f"{h.kind} model [bold]{h.path.stem}[/bold] {what}: {h.path}", soft_wrap=True)
    print_notes(notes)
    out.print(
        f"from {src.get('repo')}/{src.get('file')} @ {(src.get('commit') or src.get('revision') or '?')[:12]}, "
        f"sha256 {str(src.get('file_sha256', ''))[:16]}..."
    )


def push(
    motion: PushMotion,
    repo: Repo,
    private: Private = False,
    samples: Samples = None,
    license: License = "other",
    message: Message = None,
):
    """Share a motion model on the Hugging Face Hub, with a generated model card."""
    with err.status(f"uploading {motion} to {repo}..."):
        url = push_model(motion, repo, private=private, samples=samples or [], license=license, message=message)
    out.print(f"pushed [bold]{motion}[/bold] -> {url}")
    out.print(f"others get it with: mocohd fetch hf://{repo}")


def pca(
    image: Image("Image generator: name or path.", short=False) = "demo",
    samples: PCASamples = 1_000_000,
    batch: PCABatch = 4096,
    seed: Seed("Seed of the z samples: same seed, same basis.") = 0,
    device: Device = "auto",
    name: Name("Store name (default: the generator's name).") = None,
    force: Force("Refit even if the store has a basis for this generator.") = False,
):
    """Fit the latent PCA basis of an image generator and store it (cached per generator)."""
    G = load_image_generator(image, device=device)
    counter = Counter("mapping z -> w", "samples", TimeRemainingColumn(), total=samples)
    counter.start()
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
            progress=counter.update,
        )
    except KeyboardInterrupt as e:  # main prints one line with this outcome
        e.outcome = "the fit stopped before its end; nothing stored (the store is as it was)"
        raise
    finally:
        counter.stop()
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


def _info_table(m) -> None:
    """The rows of `mocohd info` for one model (a loaders.ModelInfo), as a table."""
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for k, v in info_rows(m):
        table.add_row(k, v)
    out.print(table)
