"""Getting models from the Hugging Face Hub: ``mocohd fetch``.

    fetch("ffhq")                                        # a registry name or alias (weights/registry.json)
    fetch("hf://OWNER/REPO/path/to/file.pt", name="x")   # any Hub file in a supported format

Downloads go through ``huggingface_hub.hf_hub_download``, so its cache and
its environment variables (``HF_HOME``, ``HF_HUB_CACHE``, ``HF_ENDPOINT``,
``HF_TOKEN``, ``HF_HUB_OFFLINE``) behave as users expect. The file is
verified against the registry's sha256 when one is pinned, converted with
the importers and stored with its provenance (repo, file, commit, sha256).
A model already in the store is returned at once, without the network.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from . import store
from .errors import MocohdError, UsageError, a
from .formats import canonical, read_any
from .loaders import store_model

# huggingface_hub is imported where it is used: it takes about 0.2 s to import,
# which every other command (render, train, ...) would otherwise pay at start-up.

HF_URL = re.compile(r"^hf://(?P<repo>[\w.-]+/[\w.-]+)(?:/(?P<path>.+))?$")
ETAG_TIMEOUT = 10  # seconds to wait for the Hub before giving up with a clear message


@dataclass
class HubFile:
    repo_id: str
    filename: str
    name: str  # store name
    kind: str | None = None
    revision: str | None = None
    sha256: str | None = None
    extra: tuple[str, ...] = ()  # files downloaded beside ``filename`` (same revision) before converting it
    extra_required: bool = True  # False: an extra file the repo lacks is skipped
    depicts: str | None = None  # the registry's word on what the images show ("faces"), kept in the file's source


def parse_target(target: str, name: str | None = None, revision: str | None = None) -> HubFile:
    """A registry name/alias or an ``hf://OWNER/REPO/PATH`` URL -> what to download."""
    if target.startswith("hf://") and target.count("/") == 4 and target.endswith("/"):
        target = target[:-1]  # hf://OWNER/REPO/ is the repo
    m = HF_URL.match(target)
    if target.startswith("hf://"):
        _check_hf_url(target, m)
    if m:
        path = m.group("path") or _single_model_file(m.group("repo"), revision)
        stem = Path(path).name.split(".")[0]
        extra = (str(Path(path).with_name("config.json").as_posix()),) if Path(path).name == "pytorch_model.bin" else ()
        if stem == "pytorch_model":  # a BigGAN port repo: name the model after the repo
            stem = m.group("repo").split("/")[1].lower()
        return HubFile(
            m.group("repo"),
            path,
            store.check_name(name or re.sub(r"[^A-Za-z0-9._-]", "-", stem)),
            revision=revision,
            extra=extra,
            extra_required=False,
        )
    entries = [e for e in store.registry_entries(target) if e.repo_id]
    by_hand = [e for e in store.registry_entries(target) if e.url and not e.repo_id]
    if not entries and by_hand:
        e = by_hand[0]
        pin = f" (sha256 {e.sha256[:16]}...)" if e.sha256 else ""
        raise MocohdError(
            f"'{e.name}' has no copy on the Hub that mocohd can verify: download {e.url}{pin} and run "
            f"`mocohd import FILE --name {e.name} --kind {e.kind}`"
        )
    if not entries:
        known = sorted({e.name for e in store.registry() if e.repo_id})
        hint = f" (known: {', '.join(known)})" if known else ""
        raise MocohdError(
            f"'{target}' is not a model on the Hub registry{hint}; use hf://OWNER/REPO/PATH for any Hub file"
        )
    e = entries[0]
    return HubFile(
        e.repo_id,
        e.filename,
        store.check_name(name or e.name),
        kind=e.kind,
        revision=revision or e.revision,
        sha256=e.sha256,
        extra=tuple(e.extra_files),
        depicts=e.depicts,
    )


_REPO_PART = re.compile(r"^[A-Za-z0-9_.-]{1,96}$")


def _check_hf_url(target: str, m: re.Match | None) -> None:
    """A one-line error saying what is wrong with an ``hf://`` address, or nothing."""
    form = "expected hf://OWNER/REPO or hf://OWNER/REPO/PATH"
    parts = target[len("hf://") :].split("/")
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise UsageError(
            f"{target}: not a Hub address: {form} (the repo id is an owner and a name, e.g. someone/some-gan)"
        )
    for part in parts[:2]:
        if not _REPO_PART.match(part) or part[0] in "-." or part[-1] in "-." or "--" in part or ".." in part:
            raise UsageError(
                f"{target}: '{part}' is not a valid Hub owner or repo name (letters, digits, '-', '_' "
                "and '.', at most 96 characters, not starting or ending with '-' or '.', no '--' or '..')"
            )
    if len(parts) > 2 and not all(parts[2:]):
        raise UsageError(
            f"{target}: the path must name a file in the repo ({form}, "
            f"e.g. hf://{parts[0]}/{parts[1]}/model.safetensors)"
        )
    if m is None:  # anything else HF_URL refuses
        raise UsageError(f"{target}: not a Hub address: {form}")


def _revision_message(where: str, repo_id: str, revision: str | None, endpoint: str) -> str:
    return (
        f"{where}: revision '{revision or 'main'}' not found in the repo {repo_id} on {endpoint} "
        "(give a branch, tag or commit that exists there)"
    )


def _detail(e: BaseException) -> str:
    """The first line of an exception's message, short, without the exception's class name."""
    text = str(e).strip().splitlines()[0][:160] if str(e).strip() else ""
    if text:
        return text
    return "timed out" if isinstance(e, TimeoutError) or "timeout" in type(e).__name__.lower() else "connection lost"


def _single_model_file(repo_id: str, revision: str | None) -> str:
    """The one top-level .safetensors file of a repo (how `mocohd push` shares a model)."""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on") or not _reachable(endpoint):
        raise MocohdError(
            f"hf://{repo_id}: cannot list the repo offline; give the file: hf://{repo_id}/NAME.safetensors"
        )
    from huggingface_hub import HfApi  # deferred: 0.2 s to import (see the top)
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        with _quiet_hub_logs():
            files = [x.rfilename for x in HfApi().model_info(repo_id, revision=revision).siblings or []]
    except GatedRepoError as e:
        raise MocohdError(
            f"hf://{repo_id}: access denied (gated or private repo): log in with `hf auth login` or set HF_TOKEN"
        ) from e
    except RepositoryNotFoundError as e:
        raise MocohdError(f"hf://{repo_id}: repository not found on {endpoint} (or private: set HF_TOKEN)") from e
    except RevisionNotFoundError as e:
        raise MocohdError(_revision_message(f"hf://{repo_id}", repo_id, revision, endpoint)) from e
    except HfHubHTTPError as e:
        raise MocohdError(f"hf://{repo_id}: cannot list the repo: {_detail(e)}") from e
    except (OSError, ValueError) as e:
        raise MocohdError(
            f"hf://{repo_id}: cannot list the repo: {_detail(e)} (check the network or HF_ENDPOINT)"
        ) from e
    top = [f for f in files if f.endswith(".safetensors") and "/" not in f]
    if len(top) != 1:
        raise MocohdError(
            f"hf://{repo_id}: expected one top-level .safetensors file, found {len(top)}; "
            f"give the file: hf://{repo_id}/PATH"
        )
    return top[0]


def _already_stored(f: HubFile) -> canonical.ModelHeader | None:
    for kind in [f.kind] if f.kind else canonical.KINDS:
        path = store.store_path(kind, f.name)
        if path.is_file():
            h = canonical.read_header(path)
            src = h.source
            if (
                src.get("repo") == f.repo_id
                and src.get("file") == f.filename
                and (f.revision is None or f.revision in (src.get("revision"), src.get("commit")))
            ):
                return h
    return None


def _reachable(endpoint: str, timeout: float = 5.0) -> bool:
    """Whether a TCP connection to the endpoint's host opens within ``timeout`` seconds."""
    u = urlparse(endpoint)
    port = u.port or (443 if u.scheme == "https" else 80)
    try:
        with socket.create_connection((u.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


class _quiet_hub_logs:
    """Silence huggingface_hub's retry warnings: our error is the one line the user needs."""

    def __enter__(self):
        self.logger = logging.getLogger("huggingface_hub")
        self.level = self.logger.level
        self.logger.setLevel(logging.ERROR)

    def __exit__(self, *exc):
        self.logger.setLevel(self.level)


def download(f: HubFile, force: bool = False) -> tuple[Path, str | None]:
    """hf_hub_download with one-line errors. Returns (local path, commit sha)."""
    try:  # deferred: 0.2 s to import (see the top)
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import (
            EntryNotFoundError,
            GatedRepoError,
            HfHubHTTPError,
            HFValidationError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )
    except ImportError as e:  # pragma: no cover - a dependency
        raise MocohdError(f"huggingface_hub is not installed: {e}") from e
    where = f"{f.repo_id}/{f.filename}" + (f"@{f.revision}" if f.revision else "")
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    # The client retries unreachable hosts with back-off for half a minute; look first, briefly.
    local_only = offline or not _reachable(endpoint)
    try:
        with _quiet_hub_logs():
            path = hf_hub_download(
                f.repo_id,
                f.filename,
                revision=f.revision,
                force_download=force and not local_only,
                etag_timeout=ETAG_TIMEOUT,
                local_files_only=local_only,
            )
    except LocalEntryNotFoundError as e:  # before EntryNotFoundError: it is a subclass
        why = "offline mode (HF_HUB_OFFLINE)" if offline else f"cannot reach {endpoint}"
        raise MocohdError(
            f"{where}: {why} and the file is not in the local Hub cache "
            "(check the network or HF_ENDPOINT, or download it yourself and `mocohd import` it)"
        ) from e
    except GatedRepoError as e:
        raise MocohdError(
            f"{where}: access denied (gated or private repo): log in with `hf auth login` or set HF_TOKEN"
        ) from e
    except RepositoryNotFoundError as e:
        raise MocohdError(f"{where}: repository not found on {endpoint} (or private: set HF_TOKEN)") from e
    except RevisionNotFoundError as e:
        raise MocohdError(_revision_message(where, f.repo_id, f.revision, endpoint)) from e
    except EntryNotFoundError as e:
        raise MocohdError(f"{where}: no such file in the repository") from e
    except HfHubHTTPError as e:
        status = getattr(getattr(e, "response", None), "status_code", None)
        if status in (401, 403):
            raise MocohdError(f"{where}: access denied ({status}): log in with `hf auth login` or set HF_TOKEN") from e
        raise MocohdError(f"{where}: the Hub answered {status or 'an error'}: {_detail(e)}") from e
    except HFValidationError as e:  # a registry entry's repo id or revision the client refuses
        raise MocohdError(f"{where}: not a valid Hub repo id or revision: {_detail(e)}") from e
    except OSError as e:  # connection dropped, timeouts, disk errors
        why = f"{e.strerror}: {e.filename}" if e.strerror and e.filename else _detail(e)
        raise MocohdError(
            f"{where}: download failed ({why}); run the command again to resume, or check HF_ENDPOINT"
        ) from e
    except Exception as e:  # httpx errors and the like, still one line
        raise MocohdError(
            f"{where}: download failed ({_detail(e)}); run the command again, or check the network / HF_ENDPOINT"
        ) from e
    m = re.search(r"[/\\]snapshots[/\\]([0-9a-f]{40})[/\\]", path)
    return Path(path), (m.group(1) if m else None)


def fetch(
    target: str, name: str | None = None, revision: str | None = None, force: bool = False
) -> tuple[canonical.ModelHeader, bool]:
    """Download, verify, convert and store a model. Returns (header, downloaded).

    A store model of the same name that came from elsewhere (an import, another
    Hub file) is only replaced with ``force``. When the stored name hides a
    shipped or registry model, a ``store.ShadowWarning`` says so."""
    f = parse_target(target, name, revision)
    if not force:
        h = _already_stored(f)
        if h is not None:
            return h, False
        if f.kind:  # before the download when the kind is known (a registry entry)
            _refuse_replacing_another(f.kind, f)
    path, commit = download(f, force=force)
    for extra in f.extra:  # at the commit just downloaded, so they land in the same snapshot folder
        try:
            download(HubFile(f.repo_id, extra, f.name, revision=commit or f.revision), force=force)
        except MocohdError:
            if f.extra_required:
                raise
    sha = canonical.file_sha256(path)
    if f.sha256 and sha != f.sha256.lower():
        raise MocohdError(
            f"{f.repo_id}/{f.filename}: sha256 {sha[:16]}... does not match the registry's "
            f"{f.sha256[:16]}...: refusing it (nothing stored)"
        )
    model = read_any(path, kind=f.kind)
    model.source.update(
        repo=f.repo_id,
        file=f.filename,
        revision=f.revision or "main",
        commit=commit,
        file_sha256=sha,
        format=model.source.get("format", "mocohd"),
    )
    if f.depicts:
        model.source["depicts"] = f.depicts
    if not force:
        _refuse_replacing_another(model.kind, f)
    h = store_model(model, f.name, f"{f.repo_id}/{f.filename}", overwrite=True)
    store.warn_shadowing(h.kind, f.name, h.source)
    return h, True


def _refuse_replacing_another(kind: str, f: HubFile) -> None:
    """A store model of that name from elsewhere (an import, another Hub file) is
    only replaced with ``force``; an older fetch of the same Hub file is updated."""
    dest = store.store_path(kind, f.name)
    if not dest.is_file():
        return
    try:
        src = canonical.read_header(dest).source
    except MocohdError:
        src = {}
    if (src.get("repo"), src.get("file")) == (f.repo_id, f.filename):
        return
    origin = f"{src['repo']}/{src['file']}" if src.get("repo") else src.get("file") or src.get("data") or "elsewhere"
    raise MocohdError(
        f"{a(kind)} model named '{f.name}' is already in the store (from {origin}): "
        "give this one another name, or replace it (force=True, --force)"
    )


# ----------------------------------------------------------------------------
# Sharing motion models: ``mocohd push``.

CARD_TAGS = ["mocohd", "mocogan-hd", "video-generation", "motion-generator"]


def model_card(
    name: str, header: canonical.ModelHeader, repo_id: str, license: str = "other", samples: list[str] | None = None
) -> str:
    """README.md for a pushed motion model: YAML metadata, then how to use it."""
    cfg, src = header.config, header.source
    image, image_sha256 = header.image.get("image_name"), header.image.get("image_sha256", "unknown")
    meta = {
        "library_name": "mocohd",
        "license": license,
        "tags": CARD_TAGS,
        "mocohd": {
            "kind": "motion",
            "file": f"{name}.safetensors",
            "weights_sha256": header.weights_sha256,
            "image_generator": image or "unknown",
            "image_generator_sha256": image_sha256,
            "training_data": src.get("data", "unknown"),
            "training_steps": src.get("steps", "unknown"),
        },
    }
    lines = ["---", *_yaml(meta), "---", ""]
    render_image = image or "IMAGE_GENERATOR"
    lines += [
        f"# {name}",
        "",
        "A motion generator for [mocohd](https://pypi.org/project/mocohd-cli/) (MoCoGAN-HD, ICLR 2021): an LSTM",
        "that walks the latent space of a frozen StyleGAN2 along its principal directions. It drives any",
        f"image generator with a {cfg.get('w_dim', 512)}-d w; with another generator than the one it was trained",
        "with, its steps are re-expressed in that generator's PCA basis (cross-domain synthesis).",
        "",
        "## Use",
        "",
        "```",
        f"mocohd fetch hf://{repo_id} --name {name}",
        f"mocohd render {name}.mp4 --motion {name} --image {render_image} -n 64",
        "```",
        "",
        "## Details",
        "",
        "| | |",
        "|---|---|",
        f"| trained with image generator | {image or 'unknown'} (weights sha256 `{image_sha256}`) |",
        f"| training data | {src.get('data', 'unknown')} |",
        f"| training steps | {src.get('steps', 'unknown')} |",
        f"| hidden size / PCA directions / step weight "
        f"| {cfg.get('h_dim')} / {cfg.get('n_pca')} / {cfg.get('w_residual')} |",
        f"| weights sha256 | `{header.weights_sha256}` |",
        f"| provenance | {', '.join(f'{k}={v}' for k, v in sorted(src.items())) or '-'} |",
    ]
    if samples:
        lines += ["", "## Samples", ""] + [f"- [{Path(s).name}](samples/{Path(s).name})" for s in samples]
    return "\n".join(lines) + "\n"


def _yaml(d: dict, indent: int = 0) -> list[str]:
    """The little YAML a model card needs: nested mappings, lists of strings, scalars."""
    out = []
    pad = "  " * indent
    for k, v in d.items():
        if isinstance(v, dict):
            out += [f"{pad}{k}:", *_yaml(v, indent + 1)]
        elif isinstance(v, list):
            out += [f"{pad}{k}:", *[f"{pad}- {_scalar(x)}" for x in v]]
        else:
            out.append(f"{pad}{k}: {_scalar(v)}")
    return out


def _scalar(v) -> str:
    s = str(v)
    return s if re.fullmatch(r"[A-Za-z0-9_.\-/]+", s) else '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def push(
    motion: str,
    repo_id: str,
    private: bool = False,
    samples: list[str | os.PathLike] | None = None,
    license: str = "other",
    message: str | None = None,
) -> str:
    """Upload a motion model (canonical file + model card + optional samples) to a Hub repo. Returns its URL."""
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id):
        raise MocohdError(f"the Hub repository must be OWNER/NAME, got {repo_id!r}")
    r = store.resolve(motion, kind="motion")
    header = canonical.read_header(r.path)
    if header.kind != "motion":
        raise MocohdError(f"{r.path}: is {header.kind} model; push shares motion models")
    canonical.load_verified(r.path, header)  # never share a damaged or edited file
    for s in samples or []:
        if not Path(s).is_file():
            raise MocohdError(f"{s}: no such sample file")
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise MocohdError("cannot push in offline mode (HF_HUB_OFFLINE is set)")
    if not _reachable(endpoint):
        raise MocohdError(f"cannot reach {endpoint} (check the network or HF_ENDPOINT)")
    from huggingface_hub import HfApi  # deferred: 0.2 s to import (see the top)
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        shutil.copyfile(r.path, folder / f"{r.name}.safetensors")
        if samples:
            (folder / "samples").mkdir()
            for s in samples:
                shutil.copyfile(s, folder / "samples" / Path(s).name)
        (folder / "README.md").write_text(model_card(r.name, header, repo_id, license, [str(s) for s in samples or []]))
        try:
            with _quiet_hub_logs():
                api.create_repo(repo_id, private=private, exist_ok=True)
                api.upload_folder(
                    repo_id=repo_id,
                    folder_path=folder,
                    commit_message=message or f"Upload motion model {r.name} with mocohd",
                )
        except HfHubHTTPError as e:
            status = getattr(getattr(e, "response", None), "status_code", None)
            if status in (401, 403):
                raise MocohdError(
                    f"{repo_id}: not allowed to write ({status}): log in with `hf auth login` or set HF_TOKEN"
                ) from e
            raise MocohdError(f"{repo_id}: the Hub answered {status or 'an error'}: {_detail(e)}") from e
        except (OSError, ValueError) as e:
            raise MocohdError(
                f"{repo_id}: upload failed ({_detail(e)}); run the command again, or check HF_ENDPOINT"
            ) from e
    return f"{endpoint}/{repo_id}"
