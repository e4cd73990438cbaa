"""rosinality/stylegan2-pytorch checkpoints (``.pt``: ``g_ema`` + ``latent_avg``).

Read with ``torch.load(weights_only=True)``: only tensors and plain
containers come out. Their Generator stores the same equalised-lr
parameters as ours under other names:

    style.{i}.weight/bias (i = 1..n_mlp)      -> mapping.fc{i-1}.weight/bias
    latent_avg                                 -> mapping.w_avg
    input.input [1, C, 4, 4]                   -> synthesis.b4.const
    conv1 / to_rgb1                            -> synthesis.b4.conv1 / .torgb
    convs.{2j}, convs.{2j+1}, to_rgbs.{j}      -> synthesis.b{8*2^j}.conv0 / .conv1 / .torgb
    *.conv.weight [1, O, I, k, k]              -> *.weight [O, I, k, k]
    *.conv.modulation.weight/bias              -> *.affine.weight/bias
    *.noise.weight [1]                         -> *.noise_strength []
    *.activate.bias                            -> *.bias
    noises.noise_{n} [1, 1, r, r]              -> the n-th conv's noise_const [r, r]
"""

from __future__ import annotations

import math

import torch

from ..errors import MocohdError
from ..ops import FIR_TAPS
from .stylegan2_layout import check_fir_kernel, infer_channel_layout

FORMAT = "rosinality"


def _generator_state(obj) -> dict | None:
    if isinstance(obj, dict):
        for key in ("g_ema", "g"):
            if isinstance(obj.get(key), dict) and "input.input" in obj[key]:
                return obj[key]
        if "input.input" in obj and "conv1.conv.weight" in obj:
            return obj
    return None


def convert(obj: object, mapping_lr_mul: float = 0.01) -> tuple[dict, dict[str, torch.Tensor], dict]:
    """Rosinality checkpoint -> (stylegan2 config dict, our state dict, notes for provenance)."""
    sd = _generator_state(obj)
    if sd is None:
        raise MocohdError(
            "unknown architecture: a PyTorch checkpoint without a rosinality StyleGAN2 generator "
            "('g_ema' with 'input.input')"
        )
    notes: dict = {}
    try:
        n_mlp = 0
        while f"style.{n_mlp + 1}.weight" in sd:
            n_mlp += 1
        w_dim, z_dim = sd["style.1.weight"].shape
        n_convs = 0
        while f"convs.{n_convs}.conv.weight" in sd:
            n_convs += 1
        resolution = 4 * 2 ** (n_convs // 2)
        if n_convs % 2 or n_mlp == 0:
            raise KeyError("convs/style")

        out: dict[str, torch.Tensor] = {}
        for i in range(n_mlp):
            out[f"mapping.fc{i}.weight"] = sd[f"style.{i + 1}.weight"]
            out[f"mapping.fc{i}.bias"] = sd[f"style.{i + 1}.bias"]
        out["synthesis.b4.const"] = sd["input.input"][0]

        def conv(src: str, dst: str, noise_index: int):
            out[f"{dst}.weight"] = sd[f"{src}.conv.weight"][0]
            out[f"{dst}.affine.weight"] = sd[f"{src}.conv.modulation.weight"]
            out[f"{dst}.affine.bias"] = sd[f"{src}.conv.modulation.bias"]
            out[f"{dst}.noise_strength"] = sd[f"{src}.noise.weight"].reshape([])
            out[f"{dst}.bias"] = sd[f"{src}.activate.bias"]
            out[f"{dst}.noise_const"] = sd[f"noises.noise_{noise_index}"][0, 0]

        def torgb(src: str, dst: str):
            out[f"{dst}.weight"] = sd[f"{src}.conv.weight"][0]
            out[f"{dst}.affine.weight"] = sd[f"{src}.conv.modulation.weight"]
            out[f"{dst}.affine.bias"] = sd[f"{src}.conv.modulation.bias"]
            out[f"{dst}.bias"] = sd[f"{src}.bias"].reshape(-1)

        conv("conv1", "synthesis.b4.conv1", 0)
        torgb("to_rgb1", "synthesis.b4.torgb")
        channels = {4: sd["conv1.conv.weight"].shape[1]}
        for j in range(n_convs // 2):
            res = 8 * 2**j
            conv(f"convs.{2 * j}", f"synthesis.b{res}.conv0", 2 * j + 1)
            conv(f"convs.{2 * j + 1}", f"synthesis.b{res}.conv1", 2 * j + 2)
            torgb(f"to_rgbs.{j}", f"synthesis.b{res}.torgb")
            channels[res] = sd[f"convs.{2 * j}.conv.weight"].shape[1]
            for key in (f"convs.{2 * j}.conv.blur.kernel", f"to_rgbs.{j}.upsample.kernel"):
                if key in sd:
                    check_fir_kernel(sd[key], key)
        img_channels = sd["to_rgb1.conv.weight"].shape[1]
    except KeyError as e:
        raise MocohdError(
            f"unknown architecture: rosinality checkpoint lacks {e} (is it a StyleGAN2 generator?)"
        ) from e

    base, cmax = infer_channel_layout(channels)
    if isinstance(obj, dict) and isinstance(obj.get("latent_avg"), torch.Tensor):
        w_avg = obj["latent_avg"].reshape(-1)
    else:
        w_avg = None
        notes["w_avg"] = "missing from checkpoint; estimated from 100000 seeded samples"
    config = dict(
        resolution=resolution,
        z_dim=int(z_dim),
        w_dim=int(w_dim),
        img_channels=int(img_channels),
        mapping_layers=n_mlp,
        mapping_lr_mul=mapping_lr_mul,
        channel_base=base,
        channel_max=cmax,
        conv_clamp=None,
    )
    if w_avg is not None:
        out["mapping.w_avg"] = w_avg
    return config, {k: v.float() for k, v in out.items()}, notes


def estimate_w_avg(generator, samples: int = 100_000, batch: int = 10_000, seed: int = 0) -> torch.Tensor:
    """Mean of mapping(z) over seeded z ~ N(0, I), for checkpoints that lack latent_avg."""
    g = torch.Generator().manual_seed(seed)
    total = torch.zeros(generator.w_dim, dtype=torch.float64)
    with torch.no_grad():
        for start in range(0, samples, batch):
            n = min(batch, samples - start)
            z = torch.randn(n, generator.z_dim, generator=g)
            total += generator.mapping(z).double().sum(0)
    return (total / samples).float()


def to_rosinality_state_dict(config: dict, sd: dict[str, torch.Tensor]) -> dict:
    """Inverse of ``convert``: our StyleGAN2 state dict -> a rosinality ``{'g_ema', 'latent_avg'}`` checkpoint."""
    out: dict[str, torch.Tensor] = {}
    for i in range(config["mapping_layers"]):
        out[f"style.{i + 1}.weight"] = sd[f"mapping.fc{i}.weight"]
        out[f"style.{i + 1}.bias"] = sd[f"mapping.fc{i}.bias"]
    out["input.input"] = sd["synthesis.b4.const"][None]
    k = torch.tensor(FIR_TAPS)
    k2 = torch.outer(k, k) / torch.outer(k, k).sum()

    def conv(src, dst, noise_index, up):
        out[f"{dst}.conv.weight"] = sd[f"{src}.weight"][None]
        out[f"{dst}.conv.modulation.weight"] = sd[f"{src}.affine.weight"]
        out[f"{dst}.conv.modulation.bias"] = sd[f"{src}.affine.bias"]
        out[f"{dst}.noise.weight"] = sd[f"{src}.noise_strength"].reshape(1)
        out[f"{dst}.activate.bias"] = sd[f"{src}.bias"]
        out[f"noises.noise_{noise_index}"] = sd[f"{src}.noise_const"][None, None]
        if up:
            out[f"{dst}.conv.blur.kernel"] = k2 * 4

    def torgb(src, dst, up):
        out[f"{dst}.conv.weight"] = sd[f"{src}.weight"][None]
        out[f"{dst}.conv.modulation.weight"] = sd[f"{src}.affine.weight"]
        out[f"{dst}.conv.modulation.bias"] = sd[f"{src}.affine.bias"]
        out[f"{dst}.bias"] = sd[f"{src}.bias"].reshape(1, -1, 1, 1)
        if up:
            out[f"{dst}.upsample.kernel"] = k2 * 4

    conv("synthesis.b4.conv1", "conv1", 0, False)
    torgb("synthesis.b4.torgb", "to_rgb1", False)
    for j in range(int(math.log2(config["resolution"])) - 2):
        res = 8 * 2**j
        conv(f"synthesis.b{res}.conv0", f"convs.{2 * j}", 2 * j + 1, True)
        conv(f"synthesis.b{res}.conv1", f"convs.{2 * j + 1}", 2 * j + 2, False)
        torgb(f"synthesis.b{res}.torgb", f"to_rgbs.{j}", True)
    return {"g_ema": out, "latent_avg": sd["mapping.w_avg"]}
