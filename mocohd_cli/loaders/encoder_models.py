"""Image encoders by name: loading and saving, tied to their generator.

    E = load_encoder("ffhq-enc", G)            # refused unless it was trained for G
    ws = E(images)                             # [B, num_ws, w_dim]
    save_encoder("ffhq-enc.safetensors", E, image={"image_name": "ffhq", "image_sha256": ...})

An encoder file (kind ``encoder``) holds the weights and the generator's average w, its config,
and in its metadata (``mocohd.image``) the identity (name, weights sha256) of the generator it
was trained for: it answers latents of that generator only, so ``check_encoder`` refuses it
with any other (a generator with the same weights under another name is the same generator).
"""

from __future__ import annotations

import os

import torch

from .. import store
from ..encoders import FAMILY, EncoderConfig, ImageEncoder
from ..errors import MocohdError, a
from ..formats import ConvertedModel, canonical, checks, read_any
from ..runtime import pick_device


def build_encoder(model: ConvertedModel, origin: str = "") -> ImageEncoder:
    if model.kind != "encoder":
        raise MocohdError(f"{origin}: is {a(model.kind)} model, expected an encoder")
    checks.check_shapes(
        "encoder", model.family, model.config, {k: tuple(v.shape) for k, v in model.tensors.items()}, origin
    )
    E = ImageEncoder(EncoderConfig.from_dict(model.config))
    checks.load_weights(E, model.tensors, "encoder", origin)
    E.image, E.source = dict(model.image), dict(model.source)
    return E


def check_encoder(E: ImageEncoder, G, origin: str = "the encoder") -> None:
    """Refuse an encoder that was not trained for ``G`` (by weights sha256), or whose sizes differ."""
    mine = (getattr(G, "identity", None) or {}).get("weights_sha256")
    theirs = (getattr(E, "image", None) or {}).get("image_sha256")
    if theirs is None:
        raise MocohdError(f"{origin} does not say which image generator it was trained for")
    if mine is not None and theirs != mine:
        name = E.image.get("image_name", "another generator")
        raise MocohdError(
            f"{origin} was trained for '{name}' ({theirs[:12]}), not for {G.identity.get('name')} ({mine[:12]}): "
            "train one for this generator (mocohd train-encoder --image ...)"
        )
    if (E.w_dim, E.num_ws) != (G.w_dim, G.num_ws):
        raise MocohdError(
            f"{origin} answers {E.num_ws} w's of size {E.w_dim}; the generator needs {G.num_ws} of size {G.w_dim}"
        )


def load_encoder(name_or_path: str | os.PathLike, G=None, device: str | torch.device = "cpu") -> ImageEncoder:
    """An encoder in eval mode, parameters frozen, on ``device``; with ``G``, checked against it."""
    device = pick_device(device) if isinstance(device, str) else torch.device(device)
    r = store.resolve(name_or_path, kind="encoder")
    E = build_encoder(read_any(r.path, kind="encoder"), str(r.path))
    E.name = r.name
    E.weights_sha256 = canonical.weights_sha256(E.state_dict())
    if G is not None:
        check_encoder(E, G, f"encoder '{r.name}'")
    E.requires_grad_(False)
    return E.eval().to(device)


def encoder_model(E: ImageEncoder, image: dict | None = None, source: dict | None = None) -> ConvertedModel:
    """The canonical-file view of an encoder; ``image``: its generator's identity (name, sha256)."""
    image = dict(image or getattr(E, "image", None) or {})
    tensors = {k: v.detach().float().cpu() for k, v in E.state_dict().items()}
    return ConvertedModel("encoder", FAMILY, E.cfg.to_dict(), tensors, source or {}, image=image)


def save_encoder(path: str | os.PathLike, E: ImageEncoder, image: dict | None = None, source: dict | None = None):
    m = encoder_model(E, image, source)
    return canonical.save_model(
        path, m.tensors, kind="encoder", family=FAMILY, config=m.config, source=m.source, image=m.image
    )


__all__ = ["build_encoder", "check_encoder", "encoder_model", "load_encoder", "save_encoder"]
