"""The local model store and how names resolve.

Layout under ``MOCOHD_HOME`` (default: the user's cache folder + ``mocohd``)::

    image/NAME.safetensors    image generators
    motion/NAME.safetensors   motion generators
    pca/NAME.safetensors      latent PCA bases
    i3d/, inception/          the detectors of FVD and FID
    vgg16/NAME.safetensors    VGG16, the perceptual distance of ``invert`` (``vgg16``)
    latent/NAME.safetensors   latents ``invert`` found for photos (w's + noise maps)
    runs/NAME/                training runs
    eval-stats/, directions/  caches: real feature statistics (eval), SeFa directions (edits)

A name resolves, in order, as: an existing file; then for each kind (image,
motion, pca, ..., latent, or only the kind asked for) a model in the store, then one
shipped in the package's ``weights/`` folder; then a registry entry (or one
of its aliases) that has not been downloaded, which asks the user to run
``mocohd fetch``. Anything else is an error that lists the close matches.
A folder is never a model file: a bare word that names a folder in the
current directory (``heads``, the data of the run ``heads``) is looked up as
a name; a folder given as a path (``./heads``, ``heads/``) is refused.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import sys
import warnings
from dataclasses import dataclass, field, fields
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

from .errors import MocohdError, a
from .formats.canonical import KINDS, SUFFIX

# eval-stats: cached real feature statistics (mocohd eval); directions: cached SeFa directions (edits)
STORE_KINDS = KINDS + ("runs", "eval-stats", "directions")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def home() -> Path:
    env = os.environ.get("MOCOHD_HOME")
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "mocohd"


def weights_dir() -> Path:
    """The shipped ``weights/`` folder (the ``mocohd_cli.weights`` package in an install)."""
    try:
        p = Path(str(files("mocohd_cli.weights")))
        if (p / "registry.json").is_file():
            return p
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parent.parent / "weights"


def check_name(name: str) -> str:
    if not NAME_RE.match(name) or name.endswith(SUFFIX):
        raise MocohdError(f"invalid model name {name!r}: use letters, digits, '.', '_' and '-' (no extension)")
    return name


def kind_dir(kind: str, create: bool = False) -> Path:
    if kind not in STORE_KINDS:
        raise ValueError(f"unknown store kind {kind!r}")
    d = home() / kind
    if create:
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise MocohdError(
                f"cannot create the model store folder {d}: {e.strerror} (set MOCOHD_HOME to a writable folder)"
            ) from e
    return d


def store_path(kind: str, name: str) -> Path:
    return kind_dir(kind) / f"{check_name(name)}{SUFFIX}"


# ----------------------------------------------------------------------------
# Registry (weights/registry.json): known models, shipped or on the Hub.


@dataclass
class RegistryEntry:
    name: str
    kind: str = "image"
    family: str = "stylegan2"
    aliases: list[str] = field(default_factory=list)
    resolution: int | None = None
    description: str = ""
    license: str = ""
    file: str | None = None  # shipped in weights/
    repo_id: str | None = None  # on the Hugging Face Hub
    filename: str | None = None
    extra_files: list[str] = field(default_factory=list)  # fetched beside filename (e.g. BigGAN's config.json)
    format: str | None = None
    revision: str | None = None
    sha256: str | None = None
    url: str | None = None  # not on the Hub: where to download it by hand (then `mocohd import`)
    depicts: str | None = None  # what an image generator's images show, where it matters: "faces" (invert aligns)

    @property
    def shipped(self) -> bool:
        return self.file is not None


@lru_cache(maxsize=4)
def _load_registry(path: str, mtime: float) -> tuple[RegistryEntry, ...]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise MocohdError(f"cannot read the model registry {path}: {e.strerror}") from e
    except ValueError as e:  # bad JSON or bad UTF-8
        where = f" ({e.msg}, line {e.lineno})" if isinstance(e, json.JSONDecodeError) else ""
        raise MocohdError(f"the model registry {path} is not valid JSON{where}") from e
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, list):
        raise MocohdError(f'the model registry {path} has no "models" list')
    known = {f.name for f in fields(RegistryEntry)}
    out = []
    for i, e in enumerate(models, 1):
        if not isinstance(e, dict) or not isinstance(e.get("name"), str):
            raise MocohdError(f'the model registry {path}: entry {i} has no "name"')
        unknown = sorted(set(e) - known)
        if unknown:
            raise MocohdError(
                f"the model registry {path}: entry '{e['name']}' has unknown field(s) "
                f"{', '.join(unknown)} (known: {', '.join(sorted(known))})"
            )
        out.append(RegistryEntry(**e))
    return tuple(out)


def registry() -> tuple[RegistryEntry, ...]:
    """The shipped registry, plus the Hub entries of the JSON file named by
    ``MOCOHD_REGISTRY`` (same layout; a team's own models), listed first."""
    out: tuple[RegistryEntry, ...] = ()
    extra = os.environ.get("MOCOHD_REGISTRY")
    if extra:
        p = Path(extra).expanduser()
        if not p.is_file():
            raise MocohdError(f"MOCOHD_REGISTRY={extra}: no such file")
        out += tuple(e for e in _load_registry(str(p), p.stat().st_mtime) if not e.shipped)
    p = weights_dir() / "registry.json"
    if p.is_file():
        out += _load_registry(str(p), p.stat().st_mtime)
    return out


def registry_entries(name: str) -> list[RegistryEntry]:
    """Registry entries called ``name`` (or with it as an alias); one per kind at most."""
    return [e for e in registry() if name == e.name or name in e.aliases]


class ShadowWarning(UserWarning):
    """A store model now hides a shipped or registry model of the same kind and name."""


def shadowed(kind: str, name: str, source: dict | None = None) -> RegistryEntry | None:
    """The shipped or registry model of ``kind`` that a store model called ``name``
    hides from name resolution (the store comes first), if any. A store model
    fetched from that entry's own Hub file (``source`` repo and file) is that
    model, not a shadow."""
    for e in registry_entries(name):
        if e.kind != kind:
            continue
        if source and e.repo_id and (source.get("repo"), source.get("file")) == (e.repo_id, e.filename):
            return None
        return e
    return None


def shadow_note(kind: str, name: str, source: dict | None = None) -> str | None:
    """One line saying which shipped or registry model the store model ``name`` now hides, or None."""
    e = shadowed(kind, name, source)
    if e is None:
        return None
    where = f" (Hub {e.repo_id})" if e.repo_id else f" (from {e.url})" if e.url else ""
    what = f"the shipped {e.name} {kind} model" if e.shipped else f"the registry {kind} model {e.name}{where}"
    return f"the store model '{name}' now shadows {what}; store it under another name to keep both"


def warn_shadowing(kind: str, name: str, source: dict | None = None, stacklevel: int = 2) -> str | None:
    """Warn (``ShadowWarning``) when the store model ``name`` hides a shipped or
    registry model; returns the message, or None."""
    note = shadow_note(kind, name, source)
    if note:
        warnings.warn(note, ShadowWarning, stacklevel=stacklevel + 1)
    return note


# ----------------------------------------------------------------------------
# Store listing and name resolution.


@dataclass
class Resolved:
    path: Path
    origin: str  # "path" | "store" | "shipped"
    name: str


def list_store(kind: str | None = None) -> list[tuple[str, str, Path]]:
    """(kind, name, path) of every model file in the store."""
    out = []
    root = home()
    if not root.exists():
        return out
    if not root.is_dir():
        raise MocohdError(f"the model store {root} is not a folder (check MOCOHD_HOME)")
    for k in [kind] if kind else KINDS:
        d = root / k
        try:
            files = sorted(d.glob(f"*{SUFFIX}")) if d.is_dir() else []
        except OSError as e:
            raise MocohdError(f"cannot read the model store folder {d}: {e.strerror}") from e
        out += [(k, f.name[: -len(SUFFIX)], f) for f in files if not f.name.startswith(".")]
    return out


def _looks_like_path(s: str) -> bool:
    return os.sep in s or "/" in s or s.startswith(".") or Path(s).suffix in (SUFFIX, ".pt", ".pkl", ".pth", ".npy")


def resolve(name_or_path: str | os.PathLike, kind: str | None = None) -> Resolved:
    """Find the file a user means by ``name_or_path`` (see the module docstring)."""
    s = str(name_or_path)
    p = Path(s).expanduser()
    if p.is_file():
        return Resolved(p, "path", p.stem)
    explicit = _looks_like_path(s) or p.is_absolute()
    if p.is_dir() and explicit:
        # A folder is never a model file; a bare word that happens to name a
        # folder here (a training data folder called like its run) is a name.
        raise MocohdError(_folder_message(s, p, kind))
    if explicit:
        raise MocohdError(f"{s}: no such file")
    if not NAME_RE.match(s):
        raise MocohdError(f"invalid model name {s!r}")

    entries = registry_entries(s)
    by_kind = {e.kind: e for e in entries}

    def names(k: str) -> list[str]:  # an alias stands for its own entry's kind only
        e = by_kind.get(k)
        return list(dict.fromkeys([s] + ([e.name, *e.aliases] if e else [])))

    # Kind by kind (image first), the store before what the package ships.
    for k in [kind] if kind else KINDS:
        for n in names(k):
            f = home() / k / f"{n}{SUFFIX}"
            if f.is_file():
                return Resolved(f, "store", n)
        entry = by_kind.get(k)
        if entry and entry.shipped:
            f = weights_dir() / entry.file
            if f.is_file():
                return Resolved(f, "shipped", entry.name)
            raise MocohdError(f"the shipped model file {f} is missing; reinstall mocohd")
    for entry in entries:
        if entry.repo_id and kind in (None, entry.kind):
            raise MocohdError(f"'{s}' is a known model that is not downloaded yet: run `mocohd fetch {entry.name}`")

    if kind:
        for other in KINDS:
            if other != kind and (
                any((home() / other / f"{n}{SUFFIX}").is_file() for n in names(other))
                or (other in by_kind and by_kind[other].shipped)
            ):
                raise MocohdError(f"'{s}' is {a(other)} model, not {a(kind)} model")
    known = sorted(
        {n for e in registry() if kind in (None, e.kind) for n in [e.name, *e.aliases]}
        | {n for _, n, _ in list_store(kind)}
    )
    close = difflib.get_close_matches(s, known, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; `mocohd list` shows the known models"
    what = f"{kind} model" if kind else "model"
    if p.is_dir():
        hint = f" (./{s} here is a folder, not a model file){hint}"
    raise MocohdError(f"unknown {what} '{s}'{hint}")


def _folder_message(s: str, p: Path, kind: str | None) -> str:
    """Why a folder given as a path is not a model, and the name to use if one matches."""
    what = f"{kind} model" if kind else "model"
    name = p.name
    if NAME_RE.match(name):
        try:
            r = resolve(name, kind=kind)
        except MocohdError:
            r = None
        if r is not None and r.origin != "path":
            where = "stored" if r.origin == "store" else r.origin
            return (
                f"{s}: is a folder, not a model file; to use the {where} {what} '{name}', give its name alone: {name}"
            )
    return f"{s}: is a folder, not a model file: give a model file (.safetensors, .pt, .pkl) or a {what} name"
