"""StyleGAN2 image generator training (``mocohd train-image``): a generator of
a video dataset's frames (in-domain synthesis) or of any image folder.

    from mocohd_cli.train.image import ImageTrainConfig, train_image
    r = train_image(ImageTrainConfig(data="./heads", resolution=64, steps=20000, channel_base=4096))
    r.image      # the exported generator (G_ema), in the store as 'heads'

The recipe is StyleGAN2's: non-saturating logistic loss, R1 regularisation
of the discriminator on reals applied lazily (every ``r1_every`` steps, scaled
by it, with Adam's lr and betas adjusted as in the paper), an exponential
moving average of the generator (half-life ``ema_kimg`` thousand images, at
most ``ema_rampup`` of the images seen so far) that is the exported model,
the tracked average w for truncation, and DiffAugment (colour, translation,
cut-out) on every image the discriminator sees.

A run lives in ``MOCOHD_HOME/runs/NAME-image/`` (config.json, checkpoint.pt,
metrics.jsonl, samples/step_N.png); checkpoints are atomic, the exported
generator in the store is updated at each one, a resume is exact, Ctrl-C
saves, and torchrun runs it on many processes exactly as ``mocohd train``.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, ClassVar

import imageio.v3 as iio
import torch
import torch.nn.functional as F
from safetensors import safe_open

from .. import store
from ..augment import diff_augment
from ..data import EpochSampler, prepare
from ..discriminators.stylegan2 import StyleGAN2Discriminator
from ..errors import UsageError
from ..formats import ConvertedModel
from ..formats.canonical import atomic_write_bytes
from ..generators import StyleGAN2Config, StyleGAN2Generator
from ..models import store_model
from ..render import to_uint8
from ..runtime import enable_tf32
from ..video import tile
from .distributed import Dist
from .trainer import (CHECKPOINT_VERSION, Loop, RunSettings, _atomic_torch_save, _ignore_interrupts, _paths_as_text,
                      _resolve_precision, _StopFlag, check_settings, open_run, restore_rng, run_dir, start_run_folder)


@dataclass
class ImageTrainConfig(RunSettings):
    data: str | None = None
    resolution: int | None = None
    name: str | None = None  # default: the data folder's name
    steps: int = 10000
    batch: int = 32  # global
    lr: float = 0.0025
    r1_gamma: float | None = None  # default: StyleGAN2's heuristic 0.0002 * resolution^2 / batch
    r1_every: int = 16
    ema_kimg: float = 10.0
    ema_rampup: float | None = 0.05  # early on, the half-life is at most this fraction of the images seen; 0 or None: off
    augment: bool = True
    channel_base: int = 16384
    channel_max: int = 512
    mapping_layers: int = 8
    w_dim: int = 512
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 elsewhere
    workers: int = 2
    save_every: int = 1000
    sample_every: int = 1000
    log_every: int = 10

    # what a resume may change; the others must stay as the run was started
    MUTABLE: ClassVar[tuple[str, ...]] = ("steps", "device", "workers", "save_every", "sample_every", "log_every")

    def validate(self) -> None:
        _paths_as_text(self, "data")
        check_settings(self, dict(resolution=4, steps=1, batch=1, r1_every=1, channel_base=1, channel_max=1,
                                  mapping_layers=1, w_dim=1, seed=0, workers=0, save_every=1, sample_every=1, log_every=1),
                       positive=("lr",), nonnegative=("r1_gamma", "ema_kimg", "ema_rampup"), optional=("ema_rampup",),
                       choices={"precision": ("auto", "fp32", "bf16"), "augment": (True, False)})
        if self.seed >= 2**32:
            raise UsageError(f"--seed must be below 2^32, got {self.seed}")
        if self.resolution is not None:
            self.generator_config()

    def generator_config(self):
        """The StyleGAN2 architecture these settings describe."""
        try:
            return StyleGAN2Config(resolution=self.resolution, z_dim=self.w_dim, w_dim=self.w_dim,
                                   mapping_layers=self.mapping_layers, channel_base=self.channel_base,
                                   channel_max=self.channel_max)
        except ValueError as e:
            raise UsageError(f"generator size: {e}") from e


@dataclass
class ImageTrainResult:
    run: Path
    image: Path
    step: int
    total: int
    interrupted: bool
    losses: dict
    writer: bool = True


class FrameDataset(torch.utils.data.Dataset):
    """Every frame of a prepared clip cache as one image, [S, S, 3] uint8; items
    are (index, key) pairs from ``EpochSampler`` (the key is unused: frames are fixed)."""

    def __init__(self, cache: str | Path):
        self.cache = Path(cache)
        index = json.loads((self.cache / "index.json").read_text())
        self.files = [v["file"] for v in index["videos"]]
        counts = torch.tensor([v["frames"] for v in index["videos"]])
        self.starts = torch.cumsum(counts, 0) - counts
        self.total = int(counts.sum())

    def __len__(self) -> int:
        return self.total

    def __getitem__(self, item) -> torch.Tensor:
        i = item[0] if isinstance(item, (tuple, list)) else item
        v = int(torch.searchsorted(self.starts, torch.tensor(i), right=True)) - 1
        with safe_open(str(self.cache / self.files[v]), framework="pt") as f:
            k = i - int(self.starts[v])
            return f.get_slice("frames")[k : k + 1][0]


def train_image(cfg: ImageTrainConfig, resume: bool = False, force: bool = False,
                on_event: Callable[[str, dict], None] | None = None) -> ImageTrainResult:
    """Train (or resume) a StyleGAN2 generator; events, ``resume`` and ``force`` as
    ``mocohd_cli.train.train`` (a resume may change ``ImageTrainConfig.MUTABLE``)."""
    cfg.validate()  # again: fields may have been assigned since the config was made
    dist = Dist.from_env(cfg.device)
    emit = on_event if (on_event and dist.writer) else (lambda kind, info: None)
    try:
        if cfg.name is None:
            if cfg.data is None:
                raise UsageError("give --data (and --resolution), or --name of a run to --resume")
            cfg.name = Path(cfg.data).resolve().name
        store.check_name(cfg.name)
        run = run_dir(f"{cfg.name}-image")
        ckpt_path = run / "checkpoint.pt"
        ck = open_run(cfg, run, resume, force, emit, what="image run", exports="image")
        if cfg.data is None or cfg.resolution is None:
            raise UsageError("--data and --resolution are required for a new run")
        if cfg.batch % dist.world:
            raise UsageError(f"--batch {cfg.batch} must be a multiple of the number of processes ({dist.world})")
        device = dist.device
        precision = _resolve_precision(cfg.precision, device)
        amp = torch.bfloat16 if precision == "bf16" else None
        enable_tf32(device)
        gcfg = cfg.generator_config()
        R, local = cfg.resolution, cfg.batch // dist.world
        gamma = cfg.r1_gamma if cfg.r1_gamma is not None else 0.0002 * R * R / cfg.batch

        torch.manual_seed(cfg.seed)
        G = StyleGAN2Generator(gcfg).train().to(device)
        D = StyleGAN2Discriminator(R, cfg.channel_base, cfg.channel_max).to(device)
        G_ema = StyleGAN2Generator(gcfg).eval().requires_grad_(False).to(device)
        G_ema.load_state_dict(G.state_dict())
        for m in (G, D, G_ema):
            dist.broadcast_module(m)
        ratio = cfg.r1_every / (cfg.r1_every + 1)  # lazy regularisation: the paper's lr / betas correction
        opt_G = torch.optim.Adam(G.parameters(), cfg.lr, betas=(0.0, 0.99), eps=1e-8)
        opt_D = torch.optim.Adam(D.parameters(), cfg.lr * ratio, betas=(0.0, 0.99**ratio), eps=1e-8)
        rng = torch.Generator().manual_seed(cfg.seed * 7919 + dist.rank)

        if dist.writer:
            info = prepare(cfg.data, frame_size=R, min_frames=1,
                           progress=lambda done, total: emit("prepare", {"done": done, "total": total}))
            emit("note", {"text": ("reused the frame cache: " if info.reused else "prepared: ") + info.summary()})
        dist.barrier()
        if not dist.writer:
            info = prepare(cfg.data, frame_size=R, min_frames=1)
        dataset = FrameDataset(info.cache)
        sampler = EpochSampler(len(dataset), local, dist.rank, dist.world, cfg.seed)
        per_epoch = sampler.batches_per_epoch()

        step = 0
        if ck is not None:
            G.load_state_dict(ck["G"])
            G_ema.load_state_dict(ck["G_ema"])
            D.load_state_dict(ck["D"])
            opt_G.load_state_dict(ck["opt_G"])
            opt_D.load_state_dict(ck["opt_D"])
            step = int(ck["step"])
            restore_rng(rng, ck["rng"], dist, cfg.seed * 7919 + 104729 * step, emit)
        if dist.writer:
            start_run_folder(run, cfg, step, fresh=ck is None)
        total = cfg.steps

        def ema_beta(step: int) -> float:
            half_life = cfg.ema_kimg * 1000
            if cfg.ema_rampup:
                half_life = min(half_life, step * cfg.batch * cfg.ema_rampup)
            return 0.5 ** (cfg.batch / max(half_life, 1e-8))
        fixed_z = torch.randn(16, gcfg.z_dim, generator=torch.Generator().manual_seed(cfg.seed)).to(device)

        def aug(x):
            return diff_augment(x, rng) if cfg.augment else x

        def autocast():
            return torch.autocast(device.type, dtype=amp) if amp is not None else contextlib.nullcontext()

        def fake_images(grad: bool):
            z = torch.randn(local, gcfg.z_dim, generator=rng).to(device)
            noise = G.synthesis.make_noise(local, generator=rng, device=device)
            with torch.set_grad_enabled(grad):
                w = G.mapping(z)
                with autocast():
                    img = G.synthesis(w, noise=noise)
            return img.float(), w

        def export() -> None:
            model = ConvertedModel("image", "stylegan2", gcfg.to_dict(), {k: v.detach() for k, v in G_ema.state_dict().items()},
                                   {"format": "mocohd-train-image", "run": cfg.name, "step": step, "data": Path(cfg.data).name})
            store_model(model, cfg.name, str(run), overwrite=True)

        def save() -> None:
            states = dist.gather_objects(rng.get_state())
            dist.check_in_sync(G, G_ema, D, step=step)
            if dist.writer:
                _atomic_torch_save({"version": CHECKPOINT_VERSION, "kind": "image", "step": step,
                                    "config": json.dumps(asdict(cfg)), "G": G.state_dict(), "G_ema": G_ema.state_dict(),
                                    "D": D.state_dict(), "opt_G": opt_G.state_dict(), "opt_D": opt_D.state_dict(),
                                    "rng": states}, ckpt_path)
                export()
                emit("checkpoint", {"step": step})
            dist.barrier()

        def sample() -> None:
            if dist.writer:
                with torch.no_grad():
                    imgs = to_uint8(G_ema(fixed_z, noise_mode="const")).cpu().numpy()
                path = run / "samples" / f"step_{step:07d}.png"
                atomic_write_bytes(path, iio.imwrite("<bytes>", tile(imgs), extension=".png"))
                emit("sample", {"path": path})

        sampler.epoch, sampler.start = divmod(step, per_epoch)  # resume mid-epoch
        loader = torch.utils.data.DataLoader(
            dataset, batch_sampler=sampler,
            num_workers=cfg.workers, pin_memory=device.type == "cuda", worker_init_fn=_ignore_interrupts,
            multiprocessing_context="spawn" if cfg.workers and dist.enabled else None)
        emit("start", {"run": run, "step": step, "total": total, "per_epoch": per_epoch, "images": len(dataset),
                       "device": str(device), "world": dist.world, "precision": "bf16" if amp else "fp32",
                       "gamma": gamma, "parameters": sum(p.numel() for p in G.parameters())})
        loop = Loop(run, dist, cfg, per_epoch, emit, save, sample, "try a lower --lr")
        with _StopFlag() as stop:
            batches = iter(loader)
            while step < total:
                real = next(batches).to(device).permute(0, 3, 1, 2).float().div(127.5).sub(1)
                losses = {}
                # discriminator: logistic loss, lazy R1 on reals
                fake, _ = fake_images(grad=False)
                with autocast():
                    d_fake, d_real = D(aug(fake)).float(), D(aug(real)).float()
                l_real, l_fake = F.softplus(-d_real).mean(), F.softplus(d_fake).mean()
                loss_d = l_real + l_fake
                losses.update(D_real=float(l_real.detach()), D_fake=float(l_fake.detach()))
                if step % cfg.r1_every == 0 and gamma > 0:
                    r = real.detach().requires_grad_(True)
                    (g,) = torch.autograd.grad(D(aug(r)).sum(), r, create_graph=True)  # fp32: second order
                    r1 = g.square().sum(dim=(1, 2, 3)).mean()
                    loss_d = loss_d + r1 * (gamma / 2) * cfg.r1_every
                    losses["r1"] = float(r1.detach())
                opt_D.zero_grad(set_to_none=True)
                loss_d.backward(inputs=list(D.parameters()))
                dist.average_grads(D.parameters())
                opt_D.step()
                # generator: non-saturating loss
                fake, w = fake_images(grad=True)
                with autocast():
                    loss_g = F.softplus(-D(aug(fake)).float()).mean()
                opt_G.zero_grad(set_to_none=True)
                loss_g.backward(inputs=list(G.parameters()))
                dist.average_grads(G.parameters())
                opt_G.step()
                with torch.no_grad():
                    G.mapping.w_avg.copy_(dist.gather(w.detach()).mean(0).lerp(G.mapping.w_avg, gcfg.w_avg_beta))
                    beta = ema_beta(step + 1)  # images seen after this step
                    for p, q in zip(G.parameters(), G_ema.parameters()):
                        q.lerp_(p.detach(), 1 - beta)
                    for b, c in zip(G.buffers(), G_ema.buffers()):
                        c.copy_(b)
                losses["G"] = float(loss_g.detach())
                step += 1
                if loop.after(step, total, losses, stop):
                    break
            del batches
        loop.finish(step)
        return ImageTrainResult(run, store.store_path("image", cfg.name), step, total, loop.interrupted, loop.last,
                                dist.writer)
    finally:
        dist.close()

