"""Shared fixtures: an isolated model store and tiny randomly initialised generators."""

import pytest
import torch

from mocohd_cli.generators import StyleGAN2Config, StyleGAN2Generator


@pytest.fixture(autouse=True)
def isolated_store(tmp_path, monkeypatch):
    """Every test gets its own empty MOCOHD_HOME and no debug mode."""
    home = tmp_path / "mocohd-home"
    monkeypatch.setenv("MOCOHD_HOME", str(home))
    monkeypatch.delenv("MOCOHD_DEBUG", raising=False)
    return home


def tiny_config(resolution=16, **kw) -> StyleGAN2Config:
    base = dict(resolution=resolution, z_dim=32, w_dim=32, mapping_layers=2, channel_base=256, channel_max=32)
    base.update(kw)
    return StyleGAN2Config(**base)


def randomized_generator(cfg: StyleGAN2Config, seed: int = 0) -> StyleGAN2Generator:
    """A generator whose every parameter is non-trivial (noise strengths, biases, w_avg),
    so that a wrong name or a dropped term changes the output."""
    torch.manual_seed(seed)
    G = StyleGAN2Generator(cfg).eval()
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.uniform_(0.1, 0.5)
            elif name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.2)
        G.mapping.w_avg.normal_()
    return G


@pytest.fixture
def tiny_generator():
    return randomized_generator(tiny_config())
