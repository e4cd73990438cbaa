"""One MoCoGAN-HD iteration's parts (``train/motion_gan.py``) at tiny sizes, in both
domains: a motion generator update moves the motion generator alone, a
discriminator update the discriminators alone, and the recipe's settings are
derived from a run's."""

import pytest
import torch

from mocohd_cli.motion import MotionConfig, MotionGenerator
from mocohd_cli.train import TrainConfig
from mocohd_cli.train.motion_gan import GANConfig, MotionGAN

from .conftest import randomized_generator, tiny_config

FRAMES, BATCH = 4, 2


def tiny_gan(domain: str) -> MotionGAN:
    """A frozen 16 px generator (w 32), a motion generator moving along 8 directions, tiny discriminators."""
    G = randomized_generator(tiny_config(16)).requires_grad_(False)
    torch.manual_seed(0)
    components, _ = torch.linalg.qr(torch.randn(32, 8))
    M = MotionGenerator(MotionConfig(w_dim=32, noise_dim=32, h_dim=16, n_pca=8), components.T, torch.ones(8))
    cfg = GANConfig(
        domain=domain,
        frames=FRAMES,
        frame_size=16,
        world_batch=BATCH,
        dv_channels=4,
        di_channels=4,
        proj_dim=8,
        queue=8,
    )
    return MotionGAN(G, M.train(), cfg, seed=1)


def real_clips() -> torch.Tensor:
    return torch.rand(BATCH, FRAMES, 3, 16, 16, generator=torch.Generator().manual_seed(2)) * 2 - 1


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: p.detach().clone() for k, p in module.named_parameters()}


def moved(module: torch.nn.Module, before: dict[str, torch.Tensor]) -> list[str]:
    return [k for k, p in module.named_parameters() if not torch.equal(p.detach(), before[k])]


@pytest.mark.parametrize("domain", ["cross", "in"])
def test_g_step_changes_only_the_motion_generator(domain):
    gan = tiny_gan(domain)
    nets = {"M": gan.M, "D_V": gan.D_V, "D_I": gan.D_I, "G": gan.G}
    before = {name: snapshot(m) for name, m in nets.items()}
    losses = gan.g_step(real_clips())
    assert all(torch.isfinite(torch.as_tensor(v)) for v in losses.values())
    assert set(before["M"]) - set(moved(gan.M, before["M"])) == {"enc_cell.weight_hh"}  # no gradient: h_0 is 0
    for name in ("D_V", "D_I", "G"):  # the discriminators (D_I's EMA copy too) and the frozen generator
        assert moved(nets[name], before[name]) == [], name
    assert gan.opt_V.state == {} and gan.opt_I.state == {}  # their optimisers never stepped


@pytest.mark.parametrize("domain", ["cross", "in"])
def test_d_step_changes_only_the_discriminators(domain):
    gan = tiny_gan(domain)
    before = {name: snapshot(m) for name, m in (("M", gan.M), ("D_V", gan.D_V), ("D_I", gan.D_I), ("G", gan.G))}
    pca = gan.M.pca_components.clone()
    losses = gan.d_step(real_clips())
    assert all(torch.isfinite(torch.as_tensor(v)) for v in losses.values())
    assert moved(gan.M, before["M"]) == [] and torch.equal(gan.M.pca_components, pca)
    assert moved(gan.G, before["G"]) == []
    assert gan.opt_M.state == {}
    for name, D in (("D_V", gan.D_V), ("D_I", gan.D_I)):  # trained (cross: D_I's EMA copy follows)
        still = set(before[name]) - set(moved(D, before[name]))
        # The relativistic loss compares real scores with the mean fake score, so the bias of each scale's
        # output layer cancels out: its gradient is zero up to rounding, and whether Adam moves it depends
        # on how the CPU's kernels round (on one AMD EPYC one of them moves, on another none does).
        assert still <= output_biases(D), (name, still)
        for k in still:
            grad = D.get_parameter(k).grad
            assert grad is None or grad.abs().max() < 1e-6, (name, k, grad)


def output_biases(D: torch.nn.Module) -> set[str]:
    """The bias of the last layer of each scale of a multi-scale PatchGAN ('scales.S.layers.L.0.bias')."""
    last = {}
    for k, _ in D.named_parameters():
        if k.startswith("scales.") and k.endswith(".bias"):
            last[k.split(".")[1]] = k
    return set(last.values())


def test_the_recipe_settings_are_derived_from_the_runs():
    cfg = TrainConfig(domain="in", frames=8, lr=0.5, queue=64, batch=4, dv_channels=3)
    gan_cfg = GANConfig.from_train(cfg, frame_size=32, precision="bf16", classes=(1, 2))
    assert (gan_cfg.domain, gan_cfg.frames, gan_cfg.lr, gan_cfg.queue, gan_cfg.dv_channels) == ("in", 8, 0.5, 64, 3)
    assert (gan_cfg.world_batch, gan_cfg.frame_size, gan_cfg.precision, gan_cfg.classes) == (4, 32, "bf16", (1, 2))
    # the defaults are the run's: one place for each
    defaults = GANConfig()
    for name in (
        "domain",
        "frames",
        "g_steps",
        "lr",
        "gp_weight",
        "w_match",
        "w_mutual",
        "dv_channels",
        "di_channels",
        "proj_dim",
        "queue",
        "moco_momentum",
        "moco_temperature",
        "truncation",
    ):
        assert getattr(defaults, name) == getattr(TrainConfig(), name), name
    with pytest.raises(ValueError, match="precision must be"):
        GANConfig.from_train(cfg)  # 'auto' must be resolved by the run first
