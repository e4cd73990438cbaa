"""One training iteration of StyleGAN2 (``mocohd train-image``), the image
recipe beside the motion recipe (``motion_gan.MotionGAN``):

    gan = ImageGAN(cfg, dist, precision="fp32")     # cfg: an ImageTrainConfig
    losses = gan.iteration(real)                    # real: images [B, 3, R, R] in [-1, 1]

One discriminator update (non-saturating logistic loss, R1 on reals every
``r1_every`` steps, scaled by it: lazy regularisation with Adam's lr and betas
corrected as in the paper), then one generator update, then the tracked
average w and the generator's exponential moving average (``G_ema``, the
exported model: half-life ``ema_kimg`` thousand images, at most
``ema_rampup`` of the images seen so far). DiffAugment (colour, translation,
cut-out) on every image the discriminator sees. All random draws come from
one CPU generator per rank (``rng``), saved in checkpoints.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from ..augment import diff_augment
from ..discriminators.stylegan2 import StyleGAN2Discriminator
from ..distributed import Dist
from ..generators import StyleGAN2Generator
from .config import ImageTrainConfig


class ImageGAN:
    def __init__(self, cfg: ImageTrainConfig, dist: Dist, precision: str = "fp32"):
        self.cfg, self.dist, self.device = cfg, dist, dist.device
        self.gcfg = cfg.generator_config()
        self.local = cfg.batch // dist.world  # this rank's share of the global batch
        R = cfg.resolution
        self.gamma = cfg.r1_gamma if cfg.r1_gamma is not None else 0.0002 * R * R / cfg.batch
        self.amp = torch.bfloat16 if precision == "bf16" else None
        torch.manual_seed(cfg.seed)
        self.G = StyleGAN2Generator(self.gcfg).train().to(self.device)
        self.D = StyleGAN2Discriminator(R, cfg.channel_base, cfg.channel_max).to(self.device)
        self.G_ema = StyleGAN2Generator(self.gcfg).eval().requires_grad_(False).to(self.device)
        self.G_ema.load_state_dict(self.G.state_dict())
        for m in self.networks():
            dist.broadcast_module(m)
        ratio = cfg.r1_every / (cfg.r1_every + 1)  # lazy regularisation: the paper's lr / betas correction
        self.opt_G = torch.optim.Adam(self.G.parameters(), cfg.lr, betas=(0.0, 0.99), eps=1e-8)
        self.opt_D = torch.optim.Adam(self.D.parameters(), cfg.lr * ratio, betas=(0.0, 0.99**ratio), eps=1e-8)
        self.rng = torch.Generator().manual_seed(cfg.seed * 7919 + dist.rank)
        self.step = 0  # iterations done: lazy R1 and the EMA's ramp-up count them

    def networks(self) -> tuple[torch.nn.Module, ...]:
        """What training changes (every rank must hold the same)."""
        return self.G, self.G_ema, self.D

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp) if self.amp is not None else contextlib.nullcontext()

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, self.rng) if self.cfg.augment else x

    def fake_images(self, grad: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(images [local, 3, R, R] in float32, their w) of fresh z and noise from the run's generator."""
        G = self.G
        z = torch.randn(self.local, self.gcfg.z_dim, generator=self.rng).to(self.device)
        noise = G.synthesis.make_noise(self.local, generator=self.rng, device=self.device)
        with torch.set_grad_enabled(grad):
            w = G.mapping(z)
            with self.autocast():
                img = G.synthesis(w, noise=noise)
        return img.float(), w

    def iteration(self, real: torch.Tensor) -> dict[str, float]:
        """One D update, one G update, the averages; the losses."""
        losses = self.d_step(real)
        fake, w = self.fake_images(grad=True)
        with self.autocast():
            loss_g = F.softplus(-self.D(self.augment(fake)).float()).mean()
        self._update(self.opt_G, loss_g, self.G.parameters())
        self._track_averages(w)
        self.step += 1
        return {**losses, "G": float(loss_g.detach())}

    def d_step(self, real: torch.Tensor) -> dict[str, float]:
        """The logistic loss on reals and fakes, and every ``r1_every`` steps the lazy R1 penalty."""
        fake, _ = self.fake_images(grad=False)
        with self.autocast():
            d_fake, d_real = self.D(self.augment(fake)).float(), self.D(self.augment(real)).float()
        l_real, l_fake = F.softplus(-d_real).mean(), F.softplus(d_fake).mean()
        loss = l_real + l_fake
        losses = {"D_real": float(l_real.detach()), "D_fake": float(l_fake.detach())}
        if self.step % self.cfg.r1_every == 0 and self.gamma > 0:
            r = real.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.D(self.augment(r)).sum(), r, create_graph=True)  # fp32: second order
            r1 = g.square().sum(dim=(1, 2, 3)).mean()
            loss = loss + r1 * (self.gamma / 2) * self.cfg.r1_every
            losses["r1"] = float(r1.detach())
        self._update(self.opt_D, loss, self.D.parameters())
        return losses

    def _update(self, opt, loss: torch.Tensor, params) -> None:
        params = list(params)
        opt.zero_grad(set_to_none=True)
        loss.backward(inputs=params)
        self.dist.average_grads(params)
        opt.step()

    @torch.no_grad()
    def _track_averages(self, w: torch.Tensor) -> None:
        """The tracked average w (every rank's), and G_ema after this step's images."""
        G, G_ema = self.G, self.G_ema
        G.mapping.w_avg.copy_(self.dist.gather(w.detach()).mean(0).lerp(G.mapping.w_avg, self.gcfg.w_avg_beta))
        beta = self.ema_beta(self.step + 1)  # images seen after this step
        for p, q in zip(G.parameters(), G_ema.parameters(), strict=True):
            q.lerp_(p.detach(), 1 - beta)
        for b, c in zip(G.buffers(), G_ema.buffers(), strict=True):
            c.copy_(b)

    def ema_beta(self, step: int) -> float:
        cfg = self.cfg
        half_life = cfg.ema_kimg * 1000
        if cfg.ema_rampup:
            half_life = min(half_life, step * cfg.batch * cfg.ema_rampup)
        return 0.5 ** (cfg.batch / max(half_life, 1e-8))

    @staticmethod
    def inputs(batch: torch.Tensor, device) -> torch.Tensor:
        """A loader's batch [B, R, R, 3] uint8 -> images [B, 3, R, R] in [-1, 1] on ``device``."""
        return batch.to(device).permute(0, 3, 1, 2).float().div(127.5).sub(1)

    STATE = ("G", "G_ema", "D", "opt_G", "opt_D")  # what a checkpoint holds, under these names

    def state_dict(self) -> dict:
        return {k: getattr(self, k).state_dict() for k in self.STATE}

    def load_state_dict(self, sd: dict) -> None:
        for k in self.STATE:
            getattr(self, k).load_state_dict(sd[k])
