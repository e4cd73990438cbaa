"""What ``mocohd list`` and ``mocohd info`` show, as data: the rows of the registry's and the
store's models, and the rows describing one model. The command line prints them as text, the
studio (``mocohd studio``) as tables: one implementation for both.

    for m in listed_models():                   # the registry's models, then the store's
        print(m.name, m.kind, m.family, m.resolution, m.where, " · ".join(m.detail))
    for label, value in info_rows(describe("demo", kind="image")):
        print(label, value)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .. import store
from ..errors import MocohdError
from ..formats.canonical import KINDS, read_header
from .catalog import ModelInfo


@dataclass
class ListedModel:
    """One model of ``mocohd list``: its short columns, then what more there is to say."""

    name: str
    kind: str
    family: str
    resolution: str  # "" when the kind has none
    where: str  # shipped, hub, by hand (", in store"), or "store, SIZE"
    detail: list[str] = field(default_factory=list)  # aliases, Hub repo, description, provenance


def size(n: int) -> str:
    """A file size for people: 812 B, 1.4 MB."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def listed_models() -> list[ListedModel]:
    """Every model ``mocohd list`` shows: the registry's (shipped or on the Hub), then the store's."""
    return [ListedModel(*row) for row in [*_registry_rows(), *_store_rows()]]


def kinds_of(name: str | os.PathLike) -> list[str | None]:
    """The kinds ``mocohd info NAME`` shows: every kind a name resolves to (the demo is an image
    generator and a motion model), or [None] for a path (its own kind)."""
    if store.resolve(name).origin == "path":
        return [None]
    return [k for k in KINDS if resolves(name, k)] or [None]


def info_rows(m: ModelInfo) -> list[tuple[str, str]]:
    """The (label, value) rows of ``mocohd info`` for one model (``catalog.describe``)."""
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
    return [(k, str(v)) for k, v in rows]


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


def resolves(name: str, kind: str) -> bool:
    """Whether ``name`` is a model of ``kind`` that can be used now (shipped, fetched or made)."""
    try:
        store.resolve(name, kind=kind)
    except MocohdError:
        return False
    return True


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
