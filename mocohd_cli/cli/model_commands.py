"""The commands of the model store: `mocohd list`, `info`, `import`, `fetch`, `push` and `pca`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from .. import store
from ..errors import MocohdError, UsageError
from ..formats.canonical import KINDS, read_header
from ..hub import fetch as fetch_model, push as push_model
from ..loaders import describe, import_model, load_image_generator
from ..loaders.pca_bases import pca_for
from ..motion import MotionConfig
from .console import err, out, print_notes, shadow_notes, size
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
    rows = [*_registry_rows(), *_store_rows()]  # (name, kind, family, res, where, detail)
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


def _registry_rows() -> list[tuple]:
    """`mocohd list`'s rows of the registry's models."""
    rows = []
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
    return rows


def _store_rows() -> list[tuple]:
    """`mocohd list`'s rows of the store's models (a name that hides a registry model says so)."""
    rows = []
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
        rows.append((name, kind, family, res, f"store, {size(path.stat().st_size)}", detail))
    return rows


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
    if image and kind in ("motion", "pca", "latent", "encoder"):
        what += ("; " if what else "") + ("of" if kind == "pca" else "for") + f" image generator {image}"
    return what


def info(name: ModelName, kind: InfoKind = None):
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
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    rows = [
        ("name", m.name),
        ("file", f"{m.path}  ({m.origin}, {size(m.file_size)})"),
        ("format", m.format if m.format == "mocohd" else f"{m.format} (not imported; `mocohd import` converts it)"),
        ("kind", m.kind),
        ("family", m.family),
        *_network_rows(m.config, m.family),
        *_motion_rows(m),
        *_latent_rows(m.config if m.kind == "latent" else None),
        *_encoder_rows(m.config if m.kind == "encoder" else None),
    ]
    if m.kind in ("motion", "pca", "latent", "encoder"):
        who, sha = m.image.get("image_name"), m.image.get("image_sha256")
        rows.append(
            (
                {"motion": "trained with", "pca": "fitted on", "latent": "image generator", "encoder": "trained for"}[
                    m.kind
                ],
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


def _network_rows(cfg: dict, family: str) -> list[tuple[str, str]]:
    """`mocohd info` rows of a network's sizes: resolution, latent, channels (StyleGAN3: its design)."""
    rows = []
    if "resolution" in cfg:
        rows.append(("resolution", f"{cfg['resolution']} x {cfg['resolution']}"))
    if "z_dim" in cfg and "w_dim" in cfg:
        rows.append(("latent", f"z {cfg['z_dim']}, w {cfg['w_dim']}"))
    if family == "biggan-deep":
        latent = f"z {cfg['z_dim']} (truncated normal), {cfg['num_classes']} classes (embedding {cfg['embed_dim']})"
        channels = (
            f"width {cfg['channel_width']}, {len(cfg['layers'])} blocks, "
            f"self-attention before block {cfg['attention']}, {cfg['n_stats']} truncation statistics"
        )
        rows += [("latent", latent), ("channels", channels)]
    if "channel_base" in cfg:
        channels = f"base {cfg['channel_base']}, max {cfg['channel_max']}"
        if "mapping_layers" in cfg:
            channels += f", mapping layers {cfg['mapping_layers']}"
        rows.append(("channels", channels))
    if family == "stylegan3":
        rows += _stylegan3_rows(cfg)
    return rows


def _motion_rows(m) -> list[tuple[str, str]]:
    """`mocohd info` rows of a motion model: its sizes and its oscillator bank."""
    cfg = m.config
    if m.kind != "motion" or "n_pca" not in cfg:
        return []
    rows = [
        (
            "motion",
            f"w {cfg.get('w_dim')}, {cfg['n_pca']} PCA directions, LSTM {cfg.get('h_dim')}, "
            f"step weight {cfg.get('w_residual')}",
        )
    ]
    if cfg.get("oscillators"):  # its size and largest movements
        rows.append(
            (
                "oscillators",
                f"{len(m.oscillators)}, largest (period in frames: size in stdevs) "
                + ", ".join(f"{p:.2f}: {z:.2f}" for p, z in m.oscillators[:4]),
            )
        )
    return rows


def _encoder_rows(cfg: dict | None) -> list[tuple[str, str]]:
    """`mocohd info` rows of an encoder (``cfg`` its config; None: not an encoder): what it answers."""
    if cfg is None:
        return []
    answers = f"{cfg.get('num_ws')} w's of size {cfg.get('w_dim')} (space {cfg.get('space')})"
    return [("encoder", f"{answers} of a {cfg.get('resolution')} px image; head {cfg.get('hidden')} wide")]


def _latent_rows(cfg: dict | None) -> list[tuple[str, str]]:
    """`mocohd info` rows of a latent (``cfg`` its config; None: not a latent): what it holds,
    BigGAN's class mix, and each photo with its distance."""
    if cfg is None:
        return []
    rows = [
        (
            "latent",
            f"{cfg.get('count')} x {cfg.get('num_ws')} w's of size {cfg.get('w_dim')} (space "
            f"{cfg.get('space')}), noise maps {'stored' if cfg.get('noise') else 'none'}; "
            f"{cfg.get('loss', '?')} loss, {cfg.get('steps', '?')} steps",
        )
    ]
    if cfg.get("c_dim"):  # BigGAN
        mix = f"a mix of {cfg['c_dim']} classes per photo, found at truncation {cfg.get('truncation', 1)}"
        rows.append(("classes", mix))
    # the file's own metadata: a pair per photo, as far as both lists go
    for p, d in zip(cfg.get("photos") or [], cfg.get("distance") or [], strict=False):
        rows.append(("photo", f"{p.get('file')} (sha256 {str(p.get('sha256'))[:12]}): distance {d:.4f}"))
    return rows


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
