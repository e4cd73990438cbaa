"""One training iteration of an image encoder (``mocohd train-encoder``), beside the motion and
image recipes (``motion_gan``, ``image_gan``).

    recipe = EncoderRecipe(E, G, rng=torch.Generator().manual_seed(0))
    losses = recipe.iteration(batch=16)              # generator samples only
    losses = recipe.iteration(batch=16, real=x)      # and real frames x [B, 3, R, R] in [-1, 1]

The generator's own samples come with their answer: z ~ N(0, I) -> w = G.mapping(z) ->
x = G.synthesis(w, noise) (fresh noise maps, so the encoder learns to look past them). The
encoder sees x and answers w'; the loss (pSp's, Richardson et al. 2021, with e4e's offset
regulariser, Tov et al. 2021) is

    latent    (w' - w)^2 / v averaged over layers and dimensions (v: the variance of one
              dimension of w about the average w: ``invert.w_stats``'s spread^2 / w_dim), on
              samples only: 1 for an encoder that answers the average w;
    pixel     ``perceptual.pixel_distance`` (squared error plus 1 - SSIM over three scales)
              between G.synthesis(w', same noise) and x, at most 256 px;
    vgg       the VGG16 distance between them, when a VGG16 is given;
    offsets   (w+) the per-layer offsets' d_i^2 / v: the w's stay near one w, where the
              generator's own latents are, so motion along its PCA directions means there what
              it means in training.

Real frames, when given, have no answer: they add the reconstruction terms (pixel, vgg) only.
G is frozen; its gradients flow to the encoder alone. Every random draw comes from ``rng``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..perceptual import pixel_distance

MAX_COMPARE = 256  # reconstructions are compared at most at this size


def compare_size(images: torch.Tensor) -> torch.Tensor:
    """Images larger than ``MAX_COMPARE`` area-resized to it (distances cost what the image does)."""
    if images.shape[-1] <= MAX_COMPARE:
        return images
    return F.interpolate(images, size=(MAX_COMPARE, MAX_COMPARE), mode="area")


class EncoderRecipe:
    def __init__(
        self,
        E,
        G,
        *,
        rng: torch.Generator,
        w_std: float,  # invert.w_stats: the root of the mean squared distance of w from the average w
        lr: float = 1e-4,
        w_latent: float = 1.0,
        w_pixel: float = 1.0,
        w_vgg: float = 1.0,
        w_offsets: float = 0.1,
        w_steps: float = 0.0,
        step_size: float = 0.1,
        truncation: float = 1.0,
        vgg=None,
        dist=None,
    ):
        self.E, self.G, self.rng, self.vgg, self.dist = E, G, rng, vgg, dist
        if dist is not None:
            dist.broadcast_module(E)  # every rank starts from the writer's weights
        self.w_var = float(w_std) ** 2 / G.w_dim  # one dimension's variance
        self.truncation = truncation
        self.weights = {
            "latent": w_latent,
            "pixel": w_pixel,
            "vgg": w_vgg if vgg is not None else 0.0,
            "steps": w_steps,
        }
        self.step_size = step_size
        self.w_offsets = w_offsets
        self.device = next(G.parameters()).device
        self.opt = torch.optim.Adam(E.parameters(), lr=lr, betas=(0.9, 0.999))

    def networks(self) -> tuple[torch.nn.Module, ...]:
        return (self.E,)

    def samples(self, n: int) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """(images [n, 3, R, R], their w's [n, w_dim], their noise maps) drawn from ``rng``."""
        with torch.no_grad():
            z = torch.randn(n, self.G.z_dim, generator=self.rng).to(self.device)
            w = self.G.mapping(z, truncation_psi=self.truncation)
            noise = self.G.synthesis.make_noise(n, generator=self.rng, device=self.device)
            return self.G.synthesis(w, noise=noise), w, noise

    def reconstruction(self, ws: torch.Tensor, target: torch.Tensor, noise=None) -> dict[str, torch.Tensor]:
        """The reconstruction terms of ``ws`` against ``target`` (each [B])."""
        img = self.G.synthesis(ws, noise=noise) if noise is not None else self.G.synthesis(ws, noise_mode="const")
        if img.shape[-1] != target.shape[-1]:  # real frames come at most at MAX_COMPARE px
            img = F.interpolate(img, size=target.shape[-2:], mode="area")
        a, b = compare_size(img), compare_size(target)
        out = {"pixel": pixel_distance(a, b)}
        if self.vgg is not None:
            out["vgg"] = self.vgg.distance(self.vgg.embed(a), self.vgg.embed(b))
        return out

    def terms(self, batch: int, real: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Every loss term of one batch (scalars), before weighting."""
        x, w, noise = self.samples(batch)
        shared, layers = self.E.offsets(x)
        ws = self.E.compose(shared, layers)
        out = {"latent": (ws - w[:, None]).square().mean() / self.w_var}
        if not (self.weights["pixel"] or self.weights["vgg"]):  # a latent-only recipe renders nothing
            real = None
        else:
            out.update({k: v.mean() for k, v in self.reconstruction(ws, x, noise).items()})
        if layers is not None:
            out["offsets"] = layers.square().mean() / self.w_var
        if self.weights["steps"]:
            out["steps"] = self.step_term(x, w, ws, noise)
        if real is not None:
            for k, v in self.reconstruction(self.E(real), real).items():
                out[f"real_{k}"] = v.mean()
        return out

    def step_term(self, x: torch.Tensor, w: torch.Tensor, ws: torch.Tensor, noise) -> torch.Tensor:
        """How far the encoder's answers for two nearby frames of one video differ from how their
        w's differ: each sample ``x`` (its w [B, w_dim], the encoder's answer ``ws`` [B, rows, w_dim])
        gets a partner at w + step_size * (w2 - w), w2 another sample, rendered with the same noise
        (a video's noise stays fixed); the squared error of the answered step, relative to the
        step's own size."""
        with torch.no_grad():
            z = torch.randn(w.shape[0], self.G.z_dim, generator=self.rng).to(self.device)
            step = self.step_size * (self.G.mapping(z, truncation_psi=self.truncation) - w)  # [B, w_dim]
            x2 = self.G.synthesis(w + step, noise=noise)
        answered = self.E(x2) - ws  # [B, rows, w_dim]
        return (answered - step[:, None]).square().mean() / (self.step_size**2 * self.w_var)

    def iteration(self, batch: int, real: torch.Tensor | None = None) -> dict[str, float]:
        self.E.train()
        terms = self.terms(batch, real)
        loss = sum(self.weights.get(k.removeprefix("real_"), 0.0) * v for k, v in terms.items())
        if "offsets" in terms:
            loss = loss + self.w_offsets * terms["offsets"]
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.dist is not None:
            self.dist.average_grads(list(self.E.parameters()))
        self.opt.step()
        return {"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in terms.items()}}

    def state_dict(self) -> dict:
        return {"E": self.E.state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.E.load_state_dict(state["E"])
        self.opt.load_state_dict(state["opt"])
