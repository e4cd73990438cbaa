"""Encoder training (``mocohd train-encoder``): a network that answers, in one forward pass, the
w's that make a frozen image generator reproduce an image (``encoders.ImageEncoder``).

    from mocohd_cli.train.encoder_trainer import EncoderTrainConfig, train_encoder
    result = train_encoder(EncoderTrainConfig(image="demo", steps=3000))
    result.encoder         # the exported encoder, in the store as 'demo' (kind encoder)

Each step is one iteration of ``encoder_recipe.EncoderRecipe``: a batch of the generator's own
samples (whose w's are known) and, with ``data``, a batch of real frames (reconstruction only).
The run (folder, checkpoints, resume, Ctrl-C, torchrun, events) is ``run.open_run``'s, in
``runs/NAME-encoder``; its samples are a grid of held-out samples above their reconstructions.
The exported encoder records its generator's identity: it is refused with any other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch

from .. import store
from ..encoders import EncoderConfig, ImageEncoder
from ..errors import MocohdError
from ..formats.canonical import atomic_write_bytes
from ..invert import w_stats
from ..loaders import load_image_generator, store_model
from ..loaders.encoder_models import encoder_model
from ..loaders.vgg16 import have_vgg16, load_vgg16
from ..render import to_uint8
from ..stopping import GracefulStop
from .config import ENCODER_PRESETS, MAX_ENCODER_INPUT, EncoderTrainConfig
from .encoder_recipe import MAX_COMPARE, EncoderRecipe
from .image_gan import ImageGAN
from .image_trainer import FrameDataset
from .run import Run, open_run

SAMPLES = 8  # held-out samples in each sample grid


@dataclass
class EncoderTrainResult:
    run: Path
    encoder: Path  # the exported encoder
    step: int
    total: int
    interrupted: bool
    losses: dict
    writer: bool = True
    config: EncoderTrainConfig | None = None  # the run's settings, every derived value filled in


def default_name(image: str) -> str:
    """The encoder's name when none is given: the generator's (a store name; a file's stem). Kinds
    are apart in the store, so the 'demo' encoder sits beside the 'demo' generator and motion model;
    the run's folder is runs/NAME-encoder."""
    return Path(str(image)).stem if Path(str(image)).suffix else str(image)


def train_encoder(
    cfg: EncoderTrainConfig,
    resume: bool = False,
    force: bool = False,
    on_event: Callable[[str, dict], None] | None = None,
) -> EncoderTrainResult:
    """Train (or resume) an encoder for ``cfg.image``; events, ``resume`` and ``force`` as
    ``mocohd_cli.train.train``. ``cfg`` stays as it was: the run's settings are the result's
    ``config``."""
    if cfg.name is None and cfg.image is not None:
        cfg = cfg.replace(name=default_name(cfg.image))
    with open_run(cfg, resume, force, on_event) as run:
        G, recipe = _build(run)
        cfg = run.cfg
        loader = _real_frames(run, G)
        start = run.restore(recipe.rng, lambda ck: recipe.load_state_dict(ck["encoder"]))
        held = _held_out(G, cfg.seed, run.device)
        per_epoch = loader.batch_sampler.batches_per_epoch() if loader is not None else 1
        parameters = sum(p.numel() for p in recipe.E.parameters())
        run.started(start, cfg.steps, per_epoch, parameters=parameters, perceptual=recipe.vgg is not None)

        step, interrupted = start, False
        with GracefulStop() as stop:
            batches = run.batches(loader, start) if loader is not None else None
            for step in range(start + 1, cfg.steps + 1):
                real = ImageGAN.inputs(next(batches), run.device) if batches is not None else None
                losses = recipe.iteration(cfg.batch // run.dist.world, real=real)
                run.log_step(step, losses)
                run.check_finite(step, losses, hint="try a lower lr")
                if step % cfg.sample_every == 0:
                    _sample(run, recipe, held, step)
                interrupted = run.dist.any(stop.requested) and step < cfg.steps
                if interrupted or step % cfg.save_every == 0 or step == cfg.steps:
                    run.save_checkpoint(step, recipe, {"kind": "encoder", "encoder": recipe.state_dict()})
                    if run.dist.writer:
                        _export(run, recipe, G, step)
                    run.checkpointed(step)
                if interrupted:
                    break
            del batches
        if not interrupted and step % cfg.sample_every:
            _sample(run, recipe, held, step)
        return EncoderTrainResult(
            run.folder, store.store_path("encoder", cfg.name), step, cfg.steps, interrupted, run.losses,
            run.dist.writer, config=cfg,
        )  # fmt: skip


def _build(run: Run) -> tuple[torch.nn.Module, EncoderRecipe]:
    """The frozen generator and the recipe; the run's settings settled (the encoder's input size)."""
    cfg = run.cfg
    G = load_image_generator(cfg.image, device=run.device)
    if not hasattr(G, "mapping") or getattr(G, "c_dim", 0):
        raise MocohdError(f"{cfg.image}: train-encoder takes StyleGAN2 and StyleGAN3 generators, not {G.family}")
    resolution = cfg.resolution or min(MAX_ENCODER_INPUT, G.resolution)
    if resolution > G.resolution:
        raise MocohdError(f"resolution {resolution} is above the generator's {G.resolution} px")
    run.cfg = cfg = cfg.replace(resolution=resolution)
    w_avg, w_std = w_stats(G)
    ecfg = EncoderConfig(
        resolution=resolution, w_dim=G.w_dim, num_ws=G.num_ws, space=cfg.space, **ENCODER_PRESETS[cfg.preset]
    )
    torch.manual_seed(cfg.seed)  # the encoder's initial weights (every rank then takes the writer's)
    E = ImageEncoder(ecfg, w_avg=w_avg.cpu()).to(run.device)
    vgg = load_vgg16(device=run.device) if cfg.w_vgg and have_vgg16() else None
    rng = torch.Generator().manual_seed(cfg.seed * 7919 + run.dist.rank)
    recipe = EncoderRecipe(
        E, G, rng=rng, w_std=w_std, lr=cfg.lr, w_latent=cfg.w_latent, w_pixel=cfg.w_pixel, w_vgg=cfg.w_vgg,
        w_offsets=cfg.w_offsets, w_steps=cfg.w_steps, step_size=cfg.step_size, truncation=cfg.truncation,
        vgg=vgg, dist=run.dist,
    )  # fmt: skip
    if vgg is None and cfg.w_vgg:
        run.note("no vgg16 in the store: reconstructions are compared by pixels and SSIM (mocohd fetch vgg16)")
    return G, recipe


def _real_frames(run: Run, G) -> torch.utils.data.DataLoader | None:
    """A loader of real frames at min(256, the generator's resolution) px, when the run has data."""
    cfg = run.cfg
    if cfg.data is None:
        return None
    info = run.prepare(min(MAX_COMPARE, G.resolution), min_frames=1, cache="frame cache")
    return run.loader(FrameDataset(info.cache), max(1, cfg.real_batch // run.dist.world))


def _held_out(G, seed: int, device) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The samples every grid shows (the same in every run of this seed): images and noise maps."""
    g = torch.Generator().manual_seed(seed + 12345)
    with torch.no_grad():
        w = G.mapping(torch.randn(SAMPLES, G.z_dim, generator=g).to(device))
        noise = G.synthesis.make_noise(SAMPLES, generator=g, device=device)
        return G.synthesis(w, noise=noise), noise


def _sample(run: Run, recipe: EncoderRecipe, held, step: int) -> None:
    """Held-out samples (top row) above what their encoded w's render (bottom row); writer only."""
    if not run.dist.writer:
        return
    images, noise = held
    with torch.no_grad():
        recipe.E.eval()
        again = recipe.G.synthesis(recipe.E(images), noise=noise)
    path = run.sample_path(step, ".png")
    rows = [np.concatenate(list(to_uint8(x).cpu().numpy()), axis=1) for x in (images, again)]
    grid = np.concatenate(rows, axis=0)
    atomic_write_bytes(path, iio.imwrite("<bytes>", grid, extension=".png"))
    run.emit("sample", {"path": path})


def _export(run: Run, recipe: EncoderRecipe, G, step: int) -> None:
    """The encoder, to the store as the run's name, tied to its generator."""
    cfg = run.cfg
    image = {"image_name": G.identity["name"], "image_sha256": G.identity["weights_sha256"]}
    source = {"format": "mocohd-train-encoder", "run": cfg.name, "step": step}
    if cfg.data is not None:
        source["data"] = Path(cfg.data).name
    store_model(encoder_model(recipe.E, image, source), cfg.name, str(run.folder), overwrite=True)
