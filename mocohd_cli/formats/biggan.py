"""BigGAN-deep checkpoints of the public PyTorch port (pytorch-pretrained-BigGAN, and the
Hub repos that copy it): ``pytorch_model.bin`` (a state dict, read with
``torch.load(weights_only=True)``) next to a ``config.json``.

Their layout, and where each tensor goes:

    embeddings.weight [128, 1000]                -> synthesis.embed.weight
    generator.gen_z.* (spectral norm)            -> synthesis.gen_z.*  (rows re-ordered: they view
                                                    the output as [B, 4, 4, C], we as [B, C, 4, 4])
    generator.layers.N (a GenBlock)              -> synthesis.blocks.K (K counts GenBlocks only)
        bn_k.running_means / running_vars [51, C] -> bnk.running_mean / running_var
        bn_k.scale.* / bn_k.offset.* (s. norm)    -> bnk.scale.weight / bnk.offset.weight
        conv_k.* (s. norm)                        -> convk.weight / bias
    generator.layers.N (the SelfAttn)            -> synthesis.attention (config "attention" = N)
        snconv1x1_theta/_phi/_g/_o_conv.*        -> theta / phi / g / o .weight;  gamma -> gamma
    generator.bn.weight/bias/running_means/vars  -> synthesis.bn.*
    generator.conv_to_rgb.* [C, C, 3, 3]         -> synthesis.to_rgb.* (the 3 channels it keeps)

A spectrally normalised weight is stored as ``weight_orig`` with the power
iteration's vectors ``weight_u`` and ``weight_v``; the port evaluates it as
weight_orig / (u . (W v)) with W = weight_orig flattened to [out, -1]. We do
that division once here (``bake``), so the canonical file holds the weights
the port computes in eval mode.

The block plan (which blocks up-sample) comes from ``config.json`` when it
sits next to the file; without it, BigGAN-deep's plan is assumed: a plain
block, then an up block, at every resolution.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from ..errors import MocohdError

FORMAT = "biggan-pytorch"
FAMILY = "biggan-deep"
_ATTN = {"snconv1x1_theta": "theta", "snconv1x1_phi": "phi", "snconv1x1_g": "g", "snconv1x1_o_conv": "o"}


def is_biggan(obj) -> bool:
    return (
        isinstance(obj, dict) and "embeddings.weight" in obj and any(str(k).startswith("generator.gen_z.") for k in obj)
    )


def bake(sd: dict, prefix: str) -> torch.Tensor:
    """The weight a spectral-norm module computes in eval mode: weight_orig / (u . W v)."""
    if prefix + ".weight_orig" not in sd:
        if prefix + ".weight" in sd:  # spectral norm already removed
            return sd[prefix + ".weight"].float()
        raise MocohdError(f"missing {prefix}.weight_orig")
    w = sd[prefix + ".weight_orig"].double()
    u, v = sd[prefix + ".weight_u"].double(), sd[prefix + ".weight_v"].double()
    sigma = torch.dot(u, w.reshape(w.shape[0], -1) @ v)
    if not torch.isfinite(sigma) or sigma.abs() < 1e-12:
        raise MocohdError(f"{prefix}: degenerate spectral norm ({float(sigma):.3g})")
    return (w / sigma).float()


def _layer_indices(sd: dict) -> list[int]:
    found = {int(m.group(1)) for k in sd if (m := re.match(r"generator\.layers\.(\d+)\.", k))}
    n = len(found)
    if found != set(range(n)):
        raise MocohdError(f"generator.layers are not numbered 0..{n - 1}")
    return sorted(found)


def infer_config(sd: dict, config_json: dict | None = None) -> dict:
    """Our BigGANConfig (as a dict) from the tensor shapes, checked against config.json if given."""
    try:
        embed_dim, num_classes = sd["embeddings.weight"].shape
        cond_dim = sd[
            "generator.gen_z.weight_orig" if "generator.gen_z.weight_orig" in sd else "generator.gen_z.weight"
        ].shape[1]
        width = sd["generator.bn.weight"].shape[0]
        n_stats = sd["generator.bn.running_means"].shape[0]
    except (KeyError, ValueError) as e:
        raise MocohdError(f"not a BigGAN-deep state dict (missing or odd {e})") from e
    blocks, attention = [], None
    for n in _layer_indices(sd):
        p = f"generator.layers.{n}."
        if p + "gamma" in sd:
            if attention is not None:
                raise MocohdError("more than one self-attention layer")
            attention = n
            continue
        try:
            cin = sd[p + "bn_0.running_means"].shape[1]
            cout = (sd.get(p + "conv_3.weight_orig", sd.get(p + "conv_3.weight"))).shape[0]
        except (KeyError, AttributeError) as e:
            raise MocohdError(f"generator.layers.{n}: not a BigGAN-deep block") from e
        if cin % width or cout % width:
            raise MocohdError(f"generator.layers.{n}: {cin} -> {cout} channels is not a multiple of the width {width}")
        blocks.append([cin // width, cout // width])
    if attention is None:
        raise MocohdError("no self-attention layer: not a BigGAN-deep generator")
    if config_json and "layers" in config_json:
        ups = [bool(layer[0]) for layer in config_json["layers"]]
        if len(ups) != len(blocks) or any(
            [int(a), int(b)] != [int(x) for x in layer[1:3]]
            for (a, b), layer in zip(blocks, config_json["layers"], strict=True)
        ):
            raise MocohdError("config.json's layers do not match the weights")
    else:
        ups = [k % 2 == 1 for k in range(len(blocks))]
    z_dim = cond_dim - embed_dim
    resolution = 4 * 2 ** sum(ups)
    cfg = dict(
        resolution=resolution,
        z_dim=z_dim,
        embed_dim=embed_dim,
        num_classes=num_classes,
        channel_width=width,
        layers=[[u, i, o] for u, (i, o) in zip(ups, blocks, strict=True)],
        attention=attention,
        eps=float((config_json or {}).get("eps", 1e-4)),
        n_stats=n_stats,
    )
    if config_json:
        for ours, theirs in (
            ("resolution", "output_dim"),
            ("z_dim", "z_dim"),
            ("channel_width", "channel_width"),
            ("num_classes", "num_classes"),
            ("attention", "attention_layer_position"),
            ("n_stats", "n_stats"),
        ):
            if theirs in config_json and int(config_json[theirs]) != cfg[ours]:
                raise MocohdError(f"config.json says {theirs}={config_json[theirs]} but the weights have {cfg[ours]}")
    return cfg


def convert(sd: dict, config_json: dict | None = None) -> tuple[dict, dict[str, torch.Tensor], dict]:
    """(config, canonical tensors, notes) from a port state dict."""
    sd = {str(k).removeprefix("module."): v for k, v in sd.items()}
    cfg = infer_config(sd, config_json)
    out: dict[str, torch.Tensor] = {"mapping.w_avg": torch.zeros(cfg["z_dim"])}
    used: set[str] = set()

    def take(key: str) -> torch.Tensor:
        if key not in sd:
            raise MocohdError(f"missing {key}")
        used.add(key)
        return sd[key].float()

    def sn(prefix: str) -> torch.Tensor:
        used.update(
            k
            for k in (prefix + ".weight_orig", prefix + ".weight_u", prefix + ".weight_v", prefix + ".weight")
            if k in sd
        )
        return bake(sd, prefix)

    def bn(src: str, dst: str, conditional: bool = True) -> None:
        out[dst + ".running_mean"] = take(src + ".running_means")
        out[dst + ".running_var"] = take(src + ".running_vars")
        if conditional:
            out[dst + ".scale.weight"] = sn(src + ".scale")
            out[dst + ".offset.weight"] = sn(src + ".offset")
        else:
            out[dst + ".weight"], out[dst + ".bias"] = take(src + ".weight"), take(src + ".bias")

    out["synthesis.embed.weight"] = take("embeddings.weight")
    c0 = cfg["layers"][0][1] * cfg["channel_width"]
    w, b = sn("generator.gen_z"), take("generator.gen_z.bias")
    # their row (h * 4 + x) * C + c holds channel c at (h, x); ours is c * 16 + h * 4 + x
    out["synthesis.gen_z.weight"] = w.reshape(4, 4, c0, -1).permute(2, 0, 1, 3).reshape(16 * c0, -1).contiguous()
    out["synthesis.gen_z.bias"] = b.reshape(4, 4, c0).permute(2, 0, 1).reshape(-1).contiguous()
    k = 0
    for n in _layer_indices(sd):
        p = f"generator.layers.{n}"
        if n == cfg["attention"]:
            for theirs, ours in _ATTN.items():
                out[f"synthesis.attention.{ours}.weight"] = sn(f"{p}.{theirs}")
            out["synthesis.attention.gamma"] = take(f"{p}.gamma").reshape(1)
            continue
        for j in range(4):
            bn(f"{p}.bn_{j}", f"synthesis.blocks.{k}.bn{j}")
            out[f"synthesis.blocks.{k}.conv{j}.weight"] = sn(f"{p}.conv_{j}")
            out[f"synthesis.blocks.{k}.conv{j}.bias"] = take(f"{p}.conv_{j}.bias")
        k += 1
    bn("generator.bn", "synthesis.bn", conditional=False)
    out["synthesis.to_rgb.weight"] = sn("generator.conv_to_rgb")[:3].contiguous()
    out["synthesis.to_rgb.bias"] = take("generator.conv_to_rgb.bias")[:3].contiguous()
    left = sorted(set(sd) - used)
    if left:
        raise MocohdError(f"unexpected tensors in a BigGAN-deep state dict: {left[:3]}")
    notes = {"resolution": cfg["resolution"], "config_json": bool(config_json)}
    return cfg, out, notes


def read_config_json(model_file: str | Path) -> dict | None:
    """The port's config.json next to the weights, if there is one."""
    p = Path(model_file).with_name("config.json")
    if not p.is_file():
        return None
    try:
        d = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise MocohdError(f"{p}: not readable JSON: {e}") from e
    if not isinstance(d, dict):
        raise MocohdError(f"{p}: expected a JSON object")
    return d
