"""StyleGAN2 image generator training (``mocohd train-image``): a generator of
a video dataset's frames (in-domain synthesis) or of any image folder.

    from mocohd_cli.train.image_trainer import ImageTrainConfig, train_image
    r = train_image(ImageTrainConfig(data="./heads", resolution=64, steps=20000, channel_base=4096))
    r.image      # the exported generator (G_ema), in the store as 'heads'

The recipe is StyleGAN2's (``image_gan.ImageGAN``). A run lives in
``MOCOHD_HOME/runs/NAME-image/`` (config.json, checkpoint.pt, metrics.jsonl,
samples/step_N.png) and works as ``mocohd train``'s (``run.open_run``):
checkpoints are atomic, the exported generator in the store is updated at each
one, a resume is exact, Ctrl-C saves, and torchrun runs it on many processes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import imageio.v3 as iio
import torch
from safetensors import safe_open

from .. import store
from ..formats import ConvertedModel
from ..formats.canonical import atomic_write_bytes
from ..loaders import store_model
from ..render import to_uint8
from ..stopping import GracefulStop
from ..video import tile
from .config import ImageTrainConfig
from .image_gan import ImageGAN
from .run import Run, open_run

__all__ = ["FrameDataset", "ImageTrainConfig", "ImageTrainResult", "train_image"]


@dataclass
class ImageTrainResult:
    run: Path
    image: Path
    step: int
    total: int
    interrupted: bool
    losses: dict
    writer: bool = True
    config: ImageTrainConfig | None = None  # the run's settings, every derived value filled in (its config.json)


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


def train_image(
    cfg: ImageTrainConfig,
    resume: bool = False,
    force: bool = False,
    on_event: Callable[[str, dict], None] | None = None,
) -> ImageTrainResult:
    """Train (or resume) a StyleGAN2 generator; events, ``resume`` and ``force`` as
    ``mocohd_cli.train.train`` (a resume may change ``ImageTrainConfig.MUTABLE``). ``cfg`` stays
    as it was: the run's settings, every derived value filled in, are the result's ``config``."""
    with open_run(cfg, resume, force, on_event) as run:
        cfg = run.cfg  # the run's settings: a name from the data folder, a resume's stored values
        gan = ImageGAN(cfg, run.dist, run.precision)
        info = run.prepare(cfg.resolution, min_frames=1, cache="frame cache")
        dataset = FrameDataset(info.cache)
        loader = run.loader(dataset, gan.local)
        gan.step = start = run.restore(gan.rng, gan.load_state_dict)  # the checkpoint holds G, G_ema, D, opt_G, opt_D
        fixed_z = torch.randn(16, gan.gcfg.z_dim, generator=torch.Generator().manual_seed(cfg.seed)).to(run.device)
        parameters = sum(p.numel() for p in gan.G.parameters())
        per_epoch = loader.batch_sampler.batches_per_epoch()
        run.started(start, cfg.steps, per_epoch, images=len(dataset), gamma=gan.gamma, parameters=parameters)

        step, interrupted = start, False
        with GracefulStop() as stop:
            batches = run.batches(loader, start)
            for step in range(start + 1, cfg.steps + 1):  # step: the iterations done once this one is
                losses = gan.iteration(ImageGAN.inputs(next(batches), run.device))
                run.log_step(step, losses)
                run.check_finite(step, losses, hint="try a lower lr")
                if step % cfg.sample_every == 0:
                    _sample(run, gan, fixed_z, step)
                interrupted = run.dist.any(stop.requested) and step < cfg.steps  # every rank stops at the same step
                if interrupted or step % cfg.save_every == 0 or step == cfg.steps:
                    run.save_checkpoint(step, gan, {"kind": "image", **gan.state_dict()})
                    if run.dist.writer:
                        _export(run, gan, step)
                    run.checkpointed(step)
                if interrupted:
                    break
            del batches  # its worker processes stop here, still under the graceful stop
        if not interrupted and step % cfg.sample_every:  # the samples of the last step
            _sample(run, gan, fixed_z, step)
        return ImageTrainResult(
            run.folder,
            store.store_path("image", cfg.name),
            step,
            cfg.steps,
            interrupted,
            run.losses,
            run.dist.writer,
            config=cfg,
        )


def _export(run: Run, gan: ImageGAN, step: int) -> None:
    """The generator's moving average (G_ema), to the store as the run's name."""
    cfg = run.cfg
    weights = {k: v.detach() for k, v in gan.G_ema.state_dict().items()}
    source = {"format": "mocohd-train-image", "run": cfg.name, "step": step, "data": Path(cfg.data).name}
    model = ConvertedModel("image", "stylegan2", gan.gcfg.to_dict(), weights, source)
    store_model(model, cfg.name, str(run.folder), overwrite=True)


def _sample(run: Run, gan: ImageGAN, fixed_z: torch.Tensor, step: int) -> None:
    """A grid of G_ema's images of ``fixed_z`` (writer rank) and its 'sample' event."""
    if not run.dist.writer:
        return
    with torch.no_grad():
        images = to_uint8(gan.G_ema(fixed_z, noise_mode="const")).cpu().numpy()
    path = run.sample_path(step, ".png")
    atomic_write_bytes(path, iio.imwrite("<bytes>", tile(images), extension=".png"))
    run.emit("sample", {"path": path})
