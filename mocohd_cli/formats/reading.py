"""``read_any``: sniff a weight file (its bytes, not its name) and read it into a
``ConvertedModel`` with the reader of its format (the table is in ``formats``).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from ..errors import MocohdError, a
from ..generators import build_generator
from ..pca import PCA_FAMILY
from . import biggan, canonical, checks, i3d, inception, mocogan_hd, nvidia, rosinality, torch_io, torchscript, vgg

# torch.save's legacy (non-zip) files start with a pickled magic number.
_LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"


UNRECOGNISED = (
    "unrecognised file format (expected .safetensors, a rosinality .pt, an NVIDIA .pkl, a BigGAN-deep .bin, "
    "an I3D TorchScript .pt, a pytorch-fid Inception .pth or a VGG16 .pth)"
)


@dataclass
class ConvertedModel:
    kind: str
    family: str
    config: dict
    tensors: dict[str, torch.Tensor]
    source: dict = field(default_factory=dict)
    weights_sha256: str | None = None  # set when read from a canonical file (verified against its tensors)
    image: dict = field(default_factory=dict)  # motion / pca: the image generator's identity (canonical.IMAGE_KEYS)


def sniff(path: str | Path) -> str:
    """'safetensors' (mocohd's own, or damaged) | 'safetensors-plain' (readable, without mocohd
    metadata: another library's weights) | 'torch' | 'pickle' | 'unknown' from the first bytes
    (and a safetensors file's header)."""
    path = Path(path)
    if not path.exists():
        raise MocohdError(f"{path}: no such file")
    if path.is_dir():
        raise MocohdError(f"{path}: is a folder, expected a model file")
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as e:
        raise MocohdError(f"{path}: cannot read: {e.strerror}") from e
    if not head:
        raise MocohdError(f"{path}: empty file")
    if canonical.is_safetensors(path):
        return "safetensors" if _plain_safetensors_keys(path) is None else "safetensors-plain"
    # torch.save files are zip archives (a truncated one still starts with a local file header)
    if head.startswith(_LEGACY_TORCH_MAGIC) or head.startswith(b"PK\x03\x04") or zipfile.is_zipfile(path):
        return "torch"
    if head[:1] == b"\x80":
        return "pickle"
    return "unknown"


def read_any(path: str | Path, kind: str | None = None) -> ConvertedModel:
    """Read and convert any supported file. ``kind`` forces the expected kind."""
    path = Path(path)
    if kind in (None, "pca") and (path.is_dir() or path.suffix == ".npy"):
        basis = mocogan_hd.read_official(path)
        return ConvertedModel(
            "pca", PCA_FAMILY, basis.config(), basis.tensors(), {"format": "mocogan-hd-npy", "file": path.name}
        )
    fmt = sniff(path)
    if fmt == "safetensors":
        header = canonical.read_header(path)
        if kind and header.kind != kind:
            raise MocohdError(f"{path}: is {a(header.kind)} model, expected {a(kind)} model")
        checks.check_shapes(header.kind, header.family, header.config, header.shapes, path)  # before reading tensors
        tensors, digest = canonical.load_verified(path, header)
        source = dict(header.source) or {"format": "mocohd"}
        return ConvertedModel(
            header.kind, header.family, header.config, tensors, source, weights_sha256=digest, image=header.image
        )
    if fmt == "unknown":
        raise MocohdError(f"{path}: {UNRECOGNISED}")
    if fmt == "safetensors-plain":
        if not vgg.is_vgg(_plain_safetensors_keys(path) or []):
            raise MocohdError(
                f"{path}: a safetensors file without mocohd metadata; import its original checkpoint "
                "with `mocohd import` instead"
            )
        return _read_vgg(path, kind)
    if kind == "vgg16":
        return _read_vgg(path, kind)
    if fmt == "torch" and torchscript.is_torchscript(path):
        return _read_detector(path, "i3d", kind)
    if kind == "inception" and fmt == "torch":
        return _read_detector(path, "inception", kind)
    if kind == "i3d":  # not a TorchScript archive (those were read above): what is wrong with it as one
        raise MocohdError(f"{path}: {_not_i3d(path, fmt)}")
    if kind not in (None, "image"):
        what = {"torch": "PyTorch checkpoint", "pickle": "network pickle"}.get(fmt, f"{fmt} file")
        raise MocohdError(f"{path}: is {a(what)}, which holds image generators; {a(kind)} model cannot come from it")
    source = {"file": path.name, "file_sha256": canonical.file_sha256(path)}
    if fmt == "torch":
        reader = rosinality
        obj = torch_io.read_torch_file(path)
        if _is_inception(obj):
            return _read_detector(path, "inception", kind, obj)
        if isinstance(obj, dict) and vgg.is_vgg(obj.keys()):
            return _read_vgg(path, kind, obj)
        if biggan.is_biggan(obj):
            reader = biggan
        elif isinstance(obj, dict) and any(str(k).removeprefix("module.") == "enc_cell.weight_ih" for k in obj):
            raise MocohdError(
                f"{path}: an official MoCoGAN-HD motion checkpoint: import it together with its PCA "
                "folder (pca: the folder with its pca_comp.npy and pca_stdev.npy)"
            )
    else:  # a pickle
        reader = nvidia
        obj = nvidia.read_pickle(path)
    try:
        if reader is biggan:
            config, tensors, notes = biggan.convert(obj, biggan.read_config_json(path))
        else:
            config, tensors, notes = reader.convert(obj)
    except MocohdError as e:
        raise MocohdError(f"{path}: {e}") from e
    except (KeyError, IndexError, ValueError, TypeError, AttributeError, RuntimeError) as e:
        # the converters index into untrusted containers: a damaged one fails anywhere
        raise MocohdError(
            f"{path}: damaged or unusual {reader.FORMAT} file: the generator in it cannot be read "
            f"({checks.brief(e, 120)})"
        ) from e
    source.update(format=reader.FORMAT, **notes)
    family = biggan.FAMILY if reader is biggan else nvidia.family_of(config) if reader is nvidia else "stylegan2"
    model = ConvertedModel("image", family, config, tensors, source)
    checks.check_size(tensors, path.stat().st_size, path)
    shapes = {k: tuple(v.shape) for k, v in tensors.items()}
    if "mapping.w_avg" not in tensors and isinstance(config.get("w_dim"), int):
        shapes["mapping.w_avg"] = (config["w_dim"],)  # estimated below, once the rest is known to fit
    checks.check_shapes("image", family, config, shapes, path)
    checks.check_finite(tensors, path)
    if "mapping.w_avg" not in tensors:
        g = build_generator("stylegan2", config)
        g.load_state_dict({**g.state_dict(), **tensors}, strict=True)
        tensors["mapping.w_avg"] = rosinality.estimate_w_avg(g)
    return model


def _not_i3d(path: Path, fmt: str) -> str:
    """Why a file that is no TorchScript archive cannot be the I3D detector (the words after its path)."""
    want = "FVD's detector is StyleGAN-V's i3d_torchscript.pt (`mocohd fetch i3d`)"
    if fmt == "pickle":
        return f"a Python pickle, not an I3D TorchScript archive: {want}"
    with open(path, "rb") as f:
        if f.read(2) != b"PK":
            return f"a legacy torch.save file, not an I3D TorchScript archive: {want}"
    try:
        with zipfile.ZipFile(path) as z:
            z.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return f"not a readable I3D TorchScript archive (a truncated or damaged zip): download it again; {want}"
    return (
        f"a PyTorch state dict or checkpoint (torch.save), not an I3D TorchScript archive (it has no code or "
        f"constants): {want}"
    )


def _is_inception(obj) -> bool:
    """A pytorch-fid Inception-v3 state dict (or its ``InceptionV3`` wrapper's, keys under ``blocks.``)."""
    return isinstance(obj, dict) and any(str(k).endswith("Conv2d_1a_3x3.conv.weight") for k in obj)


def _plain_safetensors_keys(path: Path) -> list[str] | None:
    """The tensor names of a readable safetensors file without mocohd metadata; None for one of
    ours, or one whose header cannot be read (``canonical.read_header`` then says why)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            if "mocohd.kind" in (f.metadata() or {}):
                return None
            return list(f.keys())
    except (SafetensorError, OSError, ValueError, RuntimeError):
        return None


def _read_vgg(path: Path, kind: str | None, obj=None) -> ConvertedModel:
    """VGG16 weights (the perceptual distance of ``invert``): a torchvision state dict (.pth) or
    timm's safetensors, of which only the ``features`` tensors are read."""
    if kind not in (None, "vgg16"):
        raise MocohdError(f"{path}: is a VGG16 state dict, not {a(kind)} model")
    fmt = sniff(path)
    if fmt == "safetensors":  # one of ours, of another kind
        raise MocohdError(f"{path}: is {a(canonical.read_header(path).kind)} model, expected a vgg16 model")
    if fmt not in ("torch", "safetensors-plain"):
        raise MocohdError(
            f"{path}: not a VGG16 file (expected a torchvision .pth state dict or timm's model.safetensors)"
        )
    source = {"file": path.name, "file_sha256": canonical.file_sha256(path)}
    if fmt == "torch":
        sd = torch_io.read_torch_file(path) if obj is None else obj
        source["format"] = vgg.FORMAT_TORCHVISION
    else:
        try:
            with safe_open(str(path), framework="pt") as f:
                keys = list(f.keys())
                if not vgg.is_vgg(keys):
                    raise MocohdError(
                        f"{path}: not a VGG16 state dict (expected features.0.weight, ... features.28.bias)"
                    )
                sd = {k: f.get_tensor(k) for k in vgg.wanted(keys)}
        except (SafetensorError, OSError, ValueError, RuntimeError) as e:
            raise MocohdError(f"{path}: could not read tensors (corrupt or truncated?): {checks.brief(e)}") from e
        source["format"] = vgg.FORMAT_TIMM
    config, tensors, notes = vgg.convert(sd, path)
    source.update(notes)
    checks.check_shapes("vgg16", "vgg16", config, {k: tuple(v.shape) for k, v in tensors.items()}, path)
    checks.check_finite(tensors, path)
    return ConvertedModel("vgg16", "vgg16", config, tensors, source)


def _read_detector(path: Path, family: str, kind: str | None, obj=None) -> ConvertedModel:
    """An FVD or FID detector file (the TorchScript I3D, pytorch-fid's Inception), converted; its kind is its family."""
    if kind not in (None, family):
        what = "an I3D TorchScript archive" if family == "i3d" else "a pytorch-fid Inception-v3 state dict"
        raise MocohdError(f"{path}: is {what}, not {a(kind)} model")
    source = {"file": path.name, "file_sha256": canonical.file_sha256(path)}
    try:
        if family == "i3d":
            config, tensors, notes = i3d.convert(torchscript.read_archive(path))
        else:
            config, tensors, notes = inception.convert(torch_io.read_torch_file(path) if obj is None else obj)
    except MocohdError as e:
        raise MocohdError(str(e) if str(e).startswith(str(path)) else f"{path}: {e}") from e
    source.update(format=i3d.FORMAT if family == "i3d" else inception.FORMAT, **notes)
    checks.check_shapes(family, family, config, {k: tuple(v.shape) for k, v in tensors.items()}, path)
    checks.check_finite(tensors, path)
    return ConvertedModel(family, family, config, tensors, source)


__all__ = [
    "ConvertedModel",
    "read_any",
    "sniff",
    "biggan",
    "canonical",
    "checks",
    "i3d",
    "inception",
    "mocogan_hd",
    "nvidia",
    "rosinality",
    "torch_io",
    "torchscript",
    "vgg",
]
