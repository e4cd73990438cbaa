"""Inversion: the latent that makes a frozen image generator reproduce a photo.

    G = load_image_generator("ffhq")
    photo = read_photo("me.jpg", G.resolution)                 # uint8 [R, R, 3]
    latent = invert(G, photo, steps=1000)                       # a loaders.latents.Latent
    save_latent(latent, "me")                                   # then: mocohd render --start me

The recipe is NVIDIA's projector (stylegan2-ada-pytorch ``projector.py``, Karras
et al. 2020, appendix D):
- the w statistics: 10,000 z ~ N(0, I) mapped to w; the optimisation starts at
  their mean, and w_std = sqrt(sum |w - mean|^2 / 10,000);
- Adam (betas 0.9, 0.999) over w and the generator's noise maps (drawn from
  N(0, I), renormalised to zero mean and unit variance after every step);
- learning rate ``lr`` (0.1) x a ramp: up linearly over the first 5% of the
  steps, down along a half cosine over the last 25%;
- Gaussian noise added to w, of std w_std x 0.05 x max(0, 1 - t / 0.75)^2 (t:
  the fraction of the steps done), so early steps explore;
- the loss: the distance to the photo (``perceptual``: VGG16 features, see
  ``perceptual``; or ``pixel``: MSE + multi-scale SSIM, needing no weights) plus
  1e5 x the noise regulariser: for every noise map, at 2x2-averaged scales down
  to 8 px, the squared mean of its product with itself shifted by one pixel,
  horizontally and vertically (noise must not carry the image).

Beyond the projector: a batch of photos is inverted in one run, each an
independent problem (its own w, noise maps and distance; Adam works element
by element, so photo i's result does not depend on the others); space ``w+``
optimises one w per layer; the best latent seen so far is kept per photo (by
its distance, the regulariser aside), and ``stop()`` returning True ends the
run early with it.

``invert_and_store`` is what ``mocohd invert`` runs: photo files in, a latent in the store out,
every argument checked before a model loads; Ctrl-C or SIGTERM stops the search after its step
and keeps the best latent so far (a second signal stops it at once, storing nothing). Faces
are aligned first as FFHQ's are (``faces``: dlib's landmarks, NVIDIA's crop) when asked
(``align=True``), or by default when the generator depicts faces (``G.depicts``: the registry's
FFHQ and MetFaces generators); without the faces extra, asking is a one-line error and the
default goes on unaligned with a note.

The families (``check_generator``):
- StyleGAN2: as above.
- StyleGAN3: the same in w or w+ (its 16 w's at any size), with no noise maps
  and so no noise regulariser; the latent stores none.
- BigGAN (class-conditional): the search is over z and a soft class mix. Its w
  is ``mapping(z)``, BigGAN's truncated normal in [-2, 2] (the latent the
  motion model walks), so z is optimised (from 0, where w is 0, the mean w;
  the w noise, of std sqrt(z_dim) x 0.05 x the ramp, is added to z) and w
  stays in that range. The class vector is softmax(logits) over the classes
  (synthesis embeds it linearly: a mix of the class embeddings), its logits
  optimised by the same Adam from 0 (every class equally) or, given
  ``classes``, from those classes (the others ``CLASS_LOGIT_GAP`` below). The
  image is made at ``truncation`` (BigGAN's psi: w scaled by it and its
  batch-norm statistics; render at the same truncation to start from this
  image). Space w+ has no meaning (one w feeds every block) and is refused.
  The latent stores w [N, 1, z_dim] and the class vectors [N, c_dim].
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from . import faces as faces_mod, ops, store
from .errors import MocohdError, UsageError
from .frames import check_pair, synthesize
from .loaders import load_image_generator
from .loaders.encoder_models import load_encoder
from .loaders.latents import SPACES, Latent, default_name, free_name, save_latent
from .loaders.vgg16 import MISSING as VGG16_MISSING, have_vgg16, load_vgg16
from .perceptual import pixel_distance
from .photos import check_crop, photo_identity, probe, read_frame, read_photo
from .runtime import check_deterministic, check_dtype_supported, deterministic_process, precision
from .stopping import GracefulStop

LOSSES = ("perceptual", "pixel")

# stylegan2-ada-pytorch projector.py, project()'s defaults
W_AVG_SAMPLES = 10_000
W_AVG_SEED = 123  # the projector draws its z samples from np.random.RandomState(123)
INITIAL_LR = 0.1
INITIAL_NOISE_FACTOR = 0.05
LR_RAMPDOWN_LENGTH = 0.25
LR_RAMPUP_LENGTH = 0.05
NOISE_RAMP_LENGTH = 0.75
REGULARIZE_NOISE_WEIGHT = 1e5
BETAS = (0.9, 0.999)
MAX_STEPS = 1_000_000
PROGRESS_EVERY = 10  # steps between progress reports on a GPU
FAMILIES = ("stylegan2", "stylegan3", "biggan-deep")  # the generator families invert searches
CLASS_LOGIT_GAP = 10.0  # BigGAN, classes given: the other classes' logits start this far below theirs


def w_stats(G, samples: int = W_AVG_SAMPLES, seed: int = W_AVG_SEED, batch: int = 2000) -> tuple[torch.Tensor, float]:
    """(mean w [w_dim], w_std) of ``samples`` seeded z's mapped by ``G.mapping``: the start of
    the search and the scale of its w noise. w_std is the root of the summed variances."""
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
        raise UsageError(f"samples must be a whole number >= 2, got {samples!r}")
    device = next(G.parameters()).device
    gen = torch.Generator().manual_seed(seed)  # CPU draws: the same statistics on any device
    total = torch.zeros(G.w_dim, dtype=torch.float64)
    sq = torch.zeros((), dtype=torch.float64)
    with torch.no_grad():
        for i in range(0, samples, batch):
            z = torch.randn(min(batch, samples - i), G.z_dim, generator=gen)
            w = G.mapping(z.to(device)).cpu().double()  # float64 on the host (MPS has none)
            total += w.sum(dim=0)
            sq += w.square().sum()
    mean = total / samples
    std = math.sqrt(max(float(sq / samples - mean.square().sum()), 0.0))  # sum over dims of E|w|^2 - |E w|^2
    return mean.float(), std


def learning_rate(step: int, steps: int, lr: float = INITIAL_LR) -> float:
    """The projector's schedule: ``lr`` x (linear ramp up over the first 5%) x (half-cosine ramp
    down over the last 25%) at step ``step`` of ``steps``."""
    t = step / steps
    ramp = min(1.0, (1.0 - t) / LR_RAMPDOWN_LENGTH)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    return lr * ramp * min(1.0, t / LR_RAMPUP_LENGTH)


def w_noise_scale(step: int, steps: int, w_std: float) -> float:
    """The std of the Gaussian noise added to w at step ``step``: it fades out by 75% of the steps."""
    return w_std * INITIAL_NOISE_FACTOR * max(0.0, 1.0 - (step / steps) / NOISE_RAMP_LENGTH) ** 2


def noise_regularizer(maps: list[torch.Tensor]) -> torch.Tensor:
    """[N]: per image, over every noise map [N, 1, r, r] and its 2x2-averaged versions down to
    8 px, the squared mean of the map times itself rolled by one pixel, along x and along y."""
    total = 0
    for n in maps:
        while True:
            total = total + (n * n.roll(1, dims=3)).mean(dim=(1, 2, 3)).square()
            total = total + (n * n.roll(1, dims=2)).mean(dim=(1, 2, 3)).square()
            if n.shape[2] <= 8:
                break
            n = F.avg_pool2d(n, kernel_size=2)
    return total


def normalize_noise_(maps: list[torch.Tensor]) -> None:
    """Each image's maps to zero mean and unit variance, in place."""
    with torch.no_grad():
        for n in maps:
            n.sub_(n.mean(dim=(1, 2, 3), keepdim=True))
            n.mul_(n.square().mean(dim=(1, 2, 3), keepdim=True).rsqrt())


def as_images(images, resolution: int, device) -> torch.Tensor:
    """Photos -> float [N, 3, R, R] in [-1, 1] on ``device``: uint8 [N, R, R, 3] or [R, R, 3]
    (``read_photo``), or float [N, 3, R, R] already in [-1, 1]."""
    if isinstance(images, (list, tuple)):
        images = torch.stack([torch.as_tensor(i) for i in images])
    if not torch.is_tensor(images):
        raise UsageError(f"images must be a tensor, got {type(images).__name__}")
    if images.dtype == torch.uint8:
        if images.ndim == 3:
            images = images[None]
        if images.ndim != 4 or images.shape[3] != 3:
            raise UsageError(f"uint8 images must be [N, H, W, 3] (read_photo's layout), got {list(images.shape)}")
        images = images.permute(0, 3, 1, 2).float() / 127.5 - 1
    elif images.is_floating_point():
        if images.ndim == 3:
            images = images[None]
        if images.ndim != 4 or images.shape[1] != 3:
            raise UsageError(f"float images must be [N, 3, H, W] in [-1, 1], got {list(images.shape)}")
        if not torch.isfinite(images).all():
            raise UsageError("images hold NaN or infinite values")
        images = images.float()
    else:
        raise UsageError(f"images must be uint8 or float, got {images.dtype}")
    if images.shape[0] < 1:
        raise UsageError("no images to invert")
    if tuple(images.shape[2:]) != (resolution, resolution):
        raise UsageError(
            f"images are {images.shape[3]} x {images.shape[2]} but the generator makes {resolution} x "
            f"{resolution}: read them at its size (read_photo(path, G.resolution))"
        )
    return images.to(device).contiguous()


def check_options(steps, space, loss, lr=INITIAL_LR, seed=0, min_steps: int = 1) -> None:
    """UsageError for a value of invert's options that can never work (before any work).
    ``min_steps``: 0 when the search starts from an encoder's answer (0 steps: that answer)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or not min_steps <= steps <= MAX_STEPS:
        raise UsageError(f"steps must be a whole number in {min_steps}..{MAX_STEPS:,}, got {steps!r}")
    if space not in SPACES:
        raise UsageError(f"space must be one of {', '.join(SPACES)}, got {space!r}")
    if loss not in LOSSES:
        raise UsageError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise UsageError(f"lr must be a finite number > 0, got {lr!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise UsageError(f"seed must be a whole number in 0..2^63-1, got {seed!r}")


def check_generator(G, space: str = "w", classes=None, truncation: float = 1.0) -> tuple[str, list[int]]:
    """(G's family, the start classes as numbers) if ``invert`` can search its latents in ``space``
    (see the module docstring: StyleGAN2, StyleGAN3; BigGAN in space w only) with these start
    ``classes`` (numbers or ImageNet names) and this ``truncation`` (both BigGAN's only), else a
    one-line error."""
    if not hasattr(G, "mapping") or not hasattr(G, "synthesis"):
        raise UsageError("G must be an image generator with mapping and synthesis (load_image_generator)")
    family = getattr(G, "family", "stylegan2")
    if family not in FAMILIES:
        raise MocohdError(f"inverting photos into a {family} generator is not supported (only {', '.join(FAMILIES)})")
    if family == "biggan-deep" and space == "w+":
        raise UsageError("space w+ has no meaning for BigGAN (one w, from z, feeds every block): use space w")
    numbers = check_pair(None, G, classes, truncation)  # MocohdError for classes of an unconditional G
    if family != "biggan-deep" and truncation != 1:
        raise UsageError(
            f"truncation is for BigGAN's inversion (its batch-norm statistics); a {family} latent is "
            "found at truncation 1"
        )
    return family, numbers


def invert(
    G,
    images,
    *,
    steps: int = 1000,
    space: str = "w",
    loss: str = "perceptual",
    perceptual=None,
    seed: int = 0,
    lr: float = INITIAL_LR,
    progress: Callable[[int, int, torch.Tensor], None] | None = None,
    stop: Callable[[], bool] | None = None,
    dtype: torch.dtype | None = None,
    photos: list[dict] | None = None,
    w_avg_samples: int = W_AVG_SAMPLES,
    classes: list[int | str] | None = None,
    truncation: float = 1.0,
    start: torch.Tensor | None = None,
    progress_every: int | None = None,
    deterministic: bool = False,
) -> Latent:
    """The latents that make ``G`` reproduce ``images`` (see the module docstring).

    ``images``: uint8 [N, R, R, 3] or [R, R, 3] (``photos.read_photo``), or float [N, 3, R, R]
    in [-1, 1], at G's resolution R. ``space``: 'w' (one w for every layer) or 'w+' (one per
    layer; not BigGAN). ``loss``: 'perceptual' (VGG16; ``perceptual`` is the network, default
    the store's ``vgg16``) or 'pixel'. ``seed``: the noise maps' start and the w noise.
    ``progress(step, steps, distance [N])`` after every ``progress_every``-th step and the last
    (default: every step on the CPU, every ``PROGRESS_EVERY`` on a GPU, where each report waits
    for the device); ``stop()`` before every step: True ends the run with the best latents so
    far. ``dtype``: the generator's compute dtype (e.g.
    torch.bfloat16; the perceptual network then runs under autocast). ``photos``: what to
    record of each image ({file, sha256}). BigGAN only: ``classes`` (numbers or ImageNet names)
    the class mix starts from, equally shared (default: all classes equally); ``truncation``
    in (0, 1], the psi the images are made at. ``start`` [N, num_ws, w_dim]: where the search
    starts instead of the average w (an encoder's answer, ``ImageEncoder``; averaged over the
    layers in space w); then ``steps`` may be 0: the start itself, measured. Returns a ``Latent``
    whose ``info`` says how far it got (``steps``, ``stopped``) and at which step each photo's
    best latent was seen. The search computes in exact float32 (no TF32) unless ``dtype`` says
    otherwise; ``deterministic``: deterministic kernels only (bitwise repeatable on CUDA;
    ``runtime.precision``), False leaves the process's setting.
    """
    check_options(steps, space, loss, lr, seed, min_steps=0 if start is not None else 1)
    check_deterministic(deterministic)
    family, start_classes = check_generator(G, space, classes, truncation)
    conditional = family == "biggan-deep"
    device = next(G.parameters()).device
    check_dtype_supported(dtype, device)
    with precision(device, deterministic=deterministic or None):  # exact float32 (runtime.precision)
        target = as_images(images, G.resolution, device)
        n = target.shape[0]
        if photos is not None and len(photos) != n:
            raise UsageError(f"photos must describe each of the {n} images, got {len(photos)}")
        if loss == "perceptual":
            net = perceptual if perceptual is not None else load_vgg16(device=device)
            if not (hasattr(net, "embed") and hasattr(net, "distance")):
                raise UsageError("perceptual must be a perceptual.VGG16 (load_vgg16())")
            net = net.to(device).eval().requires_grad_(False)
        autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype in (torch.bfloat16, torch.float16))

        if loss == "perceptual":
            with torch.no_grad(), autocast:
                target_features = [f.detach() for f in net.embed(target)]

            def distance(img):
                with autocast:
                    return net.distance(net.embed(img), target_features).float()
        else:
            from_pixels = target

            def distance(img):
                return pixel_distance(img, from_pixels)

        num_ws = G.num_ws
        rows = 1 if space == "w" else num_ws
        logits = None
        if conditional:  # the search is over z (w = mapping(z)) from 0, where w is the mean w (0), and class logits
            w_avg, w_std = torch.zeros(G.z_dim), math.sqrt(G.z_dim)  # z ~ N(0, I): the summed variances are z_dim
            logits = torch.zeros(n, G.c_dim)
            if start_classes:
                logits.fill_(-CLASS_LOGIT_GAP)
                logits[:, start_classes] = 0
            logits = logits.to(device).requires_grad_(True)
        else:
            w_avg, w_std = w_stats(G, w_avg_samples)
        w_opt = w_avg.to(device).view(1, 1, -1).repeat(n, rows, 1)  # BigGAN: z
        if start is not None:
            w_opt = _start_of(start, n, num_ws, rows, w_opt.shape[-1], conditional).to(w_opt)
        w_opt.requires_grad_(True)
        # Each photo draws its noise maps and w noise from its own CPU stream: the same run on any
        # device, and photo i's result does not depend on the other photos of the batch.
        gens = [torch.Generator().manual_seed((seed * 0x9E3779B1 + i) % 2**63) for i in range(n)]
        noise = [
            torch.cat(maps).to(device).requires_grad_(True)  # none for StyleGAN3 and BigGAN
            for maps in zip(*(G.synthesis.make_noise(1, generator=g) for g in gens), strict=True)
        ]
        opt = torch.optim.Adam([w_opt, *noise, *([logits] if conditional else [])], lr=lr, betas=BETAS)

        def latent_of(x):  # the searched variable -> w's [N, rows, w_dim]
            return G.mapping(x) if conditional else x

        def class_mix():  # BigGAN's class vectors [N, c_dim]
            return logits.softmax(dim=1) if conditional else None

        def image(ws, c):
            return synthesize(
                G, ws[:, 0] if conditional else ws.expand(-1, num_ws, -1), noise, c, truncation, dtype=dtype
            )

        with torch.no_grad():
            best_ws = latent_of(w_opt).expand(-1, num_ws, -1).clone()
            best_classes = class_mix().clone() if conditional else None
        best_noise = [m.detach().clone() for m in noise]
        best = torch.full((n,), math.inf, device=device)
        best_step = torch.full((n,), -1, dtype=torch.long, device=device)

        def keep(dist, ws, maps, c, step):
            better = dist < best
            best.copy_(torch.where(better, dist, best))
            best_step.copy_(torch.where(better, torch.full_like(best_step, step), best_step))
            best_ws.copy_(torch.where(better[:, None, None], ws.expand(-1, num_ws, -1), best_ws))
            for b, m in zip(best_noise, maps, strict=True):
                b.copy_(torch.where(better[:, None, None, None], m, b))
            if c is not None:
                best_classes.copy_(torch.where(better[:, None], c, best_classes))

        first_bad = torch.full((), -1, dtype=torch.long, device=device)  # the first step with a non-finite distance
        # CPU: a report costs nothing, every step; a GPU: every PROGRESS_EVERY steps (each report waits for it)
        every = progress_every or (1 if ops.device_kind(device) == "cpu" else PROGRESS_EVERY)

        def check_finite():
            bad = int(first_bad)
            if bad >= 0:
                raise MocohdError(f"the distance became non-finite at step {bad} (a diverged run); try a smaller lr")

        done, stopped = 0, False
        with torch.enable_grad():  # also when called under torch.no_grad()
            for step in range(steps):
                if stop is not None and stop():
                    stopped = True
                    break
                for group in opt.param_groups:
                    group["lr"] = learning_rate(step, steps, lr)
                scale = w_noise_scale(step, steps, w_std)
                x = w_opt
                if scale > 0:
                    draws = torch.cat([torch.randn((1, *w_opt.shape[1:]), generator=g) for g in gens])
                    x = w_opt + draws.to(device) * scale
                ws, c = latent_of(x), class_mix()
                dist = distance(image(ws, c))
                total = (dist + noise_regularizer(noise) * REGULARIZE_NOISE_WEIGHT).sum()
                opt.zero_grad(set_to_none=True)
                total.backward()
                with torch.no_grad():
                    dist = dist.detach()
                    # flagged on the device, read on reports: no host sync at the other steps
                    first_bad = torch.where(~torch.isfinite(dist).all() & (first_bad < 0), step + 1, first_bad)
                    keep(dist, ws.detach(), noise, None if c is None else c.detach(), step)
                opt.step()
                normalize_noise_(noise)
                done = step + 1
                if done % every == 0 or done == steps:
                    check_finite()
                    if progress is not None:
                        progress(done, steps, best.detach().cpu().clone())
            check_finite()

        with torch.no_grad():  # the last update has not been measured yet
            ws, c = latent_of(w_opt.detach()), class_mix()
            keep(distance(image(ws, c)).detach(), ws, noise, c, done)
        ident = getattr(G, "identity", None) or {}
        image_of = (
            {"image_name": ident["name"], "image_sha256": ident["weights_sha256"]} if "weights_sha256" in ident else {}
        )
        info = {
            "loss": loss,
            "steps": done,
            "steps_planned": steps,
            "stopped": stopped,
            "seed": seed,
            "lr": lr,
            "best_step": [int(s) for s in best_step.tolist()],
        }  # updates made when each best was measured
        if conditional:
            info.update(truncation=float(truncation), classes_start=list(start_classes))
        if loss == "perceptual" and getattr(net, "identity", None):
            info["perceptual_sha256"] = net.identity["weights_sha256"]
        return Latent(
            ws=best_ws.detach().float().cpu(),
            noise=[b.detach().float().cpu() for b in best_noise] or None,
            space=space,
            image=image_of,
            photos=list(photos or []),
            distance=[float(d) for d in best.tolist()],
            info=info,
            generator=family,
            resolution=G.resolution,
            classes=best_classes.detach().float().cpu() if conditional else None,
        )


def _start_of(start: torch.Tensor, n: int, num_ws: int, rows: int, w_dim: int, conditional: bool) -> torch.Tensor:
    """``start`` as the searched variable [n, rows, w_dim] (space w: the mean over the layers)."""
    if conditional:
        raise UsageError("a start latent is for StyleGAN generators (BigGAN's search is over z)")
    if start.ndim != 3 or tuple(start.shape) != (n, num_ws, w_dim):
        raise UsageError(f"start must be [{n}, {num_ws}, {w_dim}] (one per image), got {list(start.shape)}")
    if not torch.isfinite(start).all():
        raise UsageError("start holds NaN or infinite values")
    start = start.detach().float()
    return start.mean(dim=1, keepdim=True) if rows == 1 else start.clone()


@dataclass
class StoredLatent:
    """What ``invert_and_store`` found and stored."""

    latent: Latent
    name: str  # its store name: ``requested``, or the first free NAME-2, NAME-3, ... when another took it meanwhile
    requested: str  # the name it was to have (given, or the first photo's)
    path: Path  # its file in the store
    stopped_by: int | None = None  # the signal (SIGINT, SIGTERM) that ended the search early; None: all its steps


def invert_and_store(
    photos: Sequence[str | os.PathLike],
    *,
    image: str | os.PathLike,
    name: str | None = None,
    steps: int = 1000,
    space: str = "w",
    loss: str = "perceptual",
    crop: str = "center",
    seed: int = 0,
    device: str = "auto",
    force: bool = False,
    classes: list[int | str] | None = None,
    truncation: float = 1.0,
    encoder: str | os.PathLike | None = None,
    align: bool | None = None,
    face: int | None = None,
    on_start: Callable[[str], None] | None = None,
    progress: Callable[[int, int, torch.Tensor], None] | None = None,
    on_stop_request: Callable[[], None] | None = None,
    on_note: Callable[[str], None] | None = None,
    on_faces: Callable[[Path, list[faces_mod.Face], int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    deterministic: bool = False,
) -> StoredLatent:
    """Invert the photo files ``photos`` (one latent each, ``invert``) into the image generator
    ``image`` and store the latents under ``name`` (default: the first photo's name, ``default_name``).

    Everything is checked before a model loads: the options, the name (taken: a MocohdError
    unless ``force`` replaces it), the photos' headers, VGG16 for the perceptual loss; then the
    generator (``check_generator``). ``crop``: 'center' or 'none' (``photos.read_photo``).
    ``on_start(line)`` once the models are loaded, ``progress(step, steps, distance [N])`` after
    every step. The first Ctrl-C or SIGTERM calls ``on_stop_request()`` and ends the search
    after its step: the best latents so far are stored (``stopped_by`` says which signal); a
    second one raises at once (KeyboardInterrupt, or ``stopping.Terminated``) and stores nothing.
    ``should_stop()`` (a button's request, as the studio's Stop) ends the search after its step
    the same way, when it returns True (``stopped_by`` stays None; ``latent.info["stopped"]`` says).
    When another process stores a latent of the same name meanwhile, this one takes a free name
    (unless ``force``). ``encoder``: an image encoder of this generator (``train-encoder``) answers
    every photo in one forward pass; the search starts there (``steps`` 0: that answer).

    ``align``: True aligns each photo's face as FFHQ's (``faces``; a MocohdError without the faces
    extra, or when a photo shows no face), False uses the photos as they are, None (the default)
    aligns when the generator depicts faces (``G.depicts``) and ``crop`` is 'center', and without
    the extra says so in ``on_note(line)`` and goes on unaligned. ``face``: which face of each photo (0-based, left to
    right; default the largest); giving it asks for alignment. ``on_faces(photo, faces, chosen)``
    for every photo aligned, before the search. ``deterministic``: as ``invert``'s."""
    if not photos:
        raise UsageError("no photos to invert")
    check_options(steps, space, loss, seed=seed, min_steps=0 if encoder is not None else 1)
    deterministic_process(check_deterministic(deterministic))  # before cuBLAS's first use (the encoder's)
    check_crop(crop)
    align = _check_align(align, face, crop)
    requested = _latent_name(name, photos[0], force)
    for p in photos:  # headers only: a missing or unreadable photo stops us before anything loads
        probe(p)
    if loss == "perceptual" and not have_vgg16():
        raise MocohdError(VGG16_MISSING)
    G = load_image_generator(image, device=device)
    check_generator(G, space, classes, truncation)
    targets, chosen = photo_targets(photos, G, align=align, face=face, crop=crop, on_note=on_note, on_faces=on_faces)
    known = [photo_identity(p) for p in photos]
    net = load_vgg16(device=next(G.parameters()).device) if loss == "perceptual" else None
    start = _encoded(encoder, G, targets) if encoder is not None else None
    try:
        with GracefulStop(on_request=on_stop_request) as stop:
            if on_start is not None:
                on_start(
                    f"inverting {len(photos)} photo(s) into {G.identity['name']} ({G.resolution} px): {steps} steps, "
                    f"space {space}, {loss} loss, {next(G.parameters()).device}"
                )
            latent = invert(
                G,
                targets,
                steps=steps,
                space=space,
                loss=loss,
                perceptual=net,
                seed=seed,
                progress=progress,
                stop=lambda: stop.requested or (should_stop is not None and should_stop()),
                photos=known,
                classes=classes,
                truncation=truncation,
                start=start,
                deterministic=deterministic,
            )
    except KeyboardInterrupt as e:  # the second signal
        e.outcome = getattr(e, "outcome", None) or "nothing stored"
        raise
    record_crop(latent, crop, chosen)
    if encoder is not None:
        latent.info["encoder"] = str(encoder)
    stored = requested if force else free_name(requested)  # taken while it ran (another invert): keep both
    header = save_latent(latent, stored, overwrite=force)
    return StoredLatent(latent, stored, requested, header.path, stop.signum if latent.info["stopped"] else None)


ALIGNED = "ffhq-align"  # a latent's info["crop"] when its photos were aligned as FFHQ's


def _check_align(align: bool | None, face: int | None, crop: str) -> bool | None:
    """``align`` as the search will take it (``face`` asks for alignment), checked before anything
    loads: a one-line error for contradictory options, or for alignment without the faces extra."""
    if face is not None:
        if isinstance(face, bool) or not isinstance(face, int) or face < 0:
            raise UsageError(f"--face must be a whole number >= 0 (as the faces are listed), got {face!r}")
        if align is False:
            raise UsageError("--face picks the face to align: it has no meaning with --no-align")
        align = True
    if align and crop != "center":
        raise UsageError(f"--crop {crop} is for photos used as they are; an aligned face is cut by FFHQ's recipe")
    if align and not faces_mod.available():
        raise MocohdError(faces_mod.MISSING)
    return align


def photo_targets(
    photos: Sequence[str | os.PathLike],
    G,
    *,
    align: bool | None = None,
    face: int | None = None,
    crop: str = "center",
    on_note: Callable[[str], None] | None = None,
    on_faces: Callable[[Path, list[faces_mod.Face], int], None] | None = None,
) -> tuple[torch.Tensor, list[dict] | None]:
    """The photos as the search's targets, uint8 [N, size, size, 3] at G's resolution: aligned as
    FFHQ's or read with ``crop``, as ``align`` decides (see ``invert_and_store``); with what each
    latent records of its aligned face (None when not aligned). `invert` and `render --start`
    both come through here, so a photo is cut the same way by either."""
    if _aligning(align, G, crop, on_note):
        cut = [_aligned_photo(p, G.resolution, face, on_faces) for p in photos]
        return torch.stack([target for target, _ in cut]), [chosen for _, chosen in cut]
    return torch.stack([read_photo(p, G.resolution, crop=crop) for p in photos]), None


def record_crop(latent: Latent, crop: str, faces: list[dict] | None) -> None:
    """What the latent records of how its photos were cut: FFHQ's alignment (and which faces) or ``crop``."""
    latent.info["crop"] = ALIGNED if faces is not None else crop
    if faces is not None:
        latent.info["faces"] = faces


def _aligning(align: bool | None, G, crop: str, on_note: Callable[[str], None] | None) -> bool:
    """Whether the photos are aligned: as asked, else when ``G`` depicts faces and ``crop`` is the
    default (the faces extra installed: without it, a note says so and the photos are used as
    they are)."""
    if align is not None:
        return align
    if getattr(G, "depicts", None) != "faces" or crop != "center":  # --crop none: the whole photo, as it is
        return False
    name = G.identity["name"]
    if not faces_mod.available():
        if on_note is not None:
            on_note(
                f"{name} depicts faces, but the photos are used as they are (not aligned as FFHQ's): "
                f"{faces_mod.EXTRA} aligns them; --no-align says they are aligned already"
            )
        return False
    return True


def _aligned_photo(path, size: int, face: int | None, on_faces) -> tuple[torch.Tensor, dict]:
    """The face of the photo at ``path`` (``face``, else the largest) aligned as FFHQ's at ``size``
    px: (uint8 [size, size, 3], what the latent records of it: the face, how many, its box)."""
    img = read_frame(path)
    found = faces_mod.detect_landmarks(img)
    k = faces_mod.pick_face(found, face, str(path))
    if on_faces is not None:
        on_faces(Path(path), found, k)
    quad = faces_mod.ffhq_quad(*faces_mod.eyes_and_mouth(found[k].landmarks))
    aligned = torch.from_numpy(faces_mod.align(img, quad, size))
    return aligned, {"face": k, "faces": len(found), "box": list(found[k].box)}


def _latent_name(name: str | None, first_photo: str | os.PathLike, force: bool) -> str:
    """The store name of a new latent: ``name`` (checked; '' is not a name), else the photo's; a
    MocohdError when a latent has it already, unless ``force``."""
    if name is not None:
        try:
            store.check_name(name)
        except MocohdError as e:
            raise UsageError(f"--name: {e}; leave --name out to name the latent after the photo") from None
    name = store.check_name(name if name is not None else default_name(first_photo))
    dest = store.store_path("latent", name)
    if dest.exists() and not force:
        raise MocohdError(
            f"a latent named '{name}' is already in the store ({dest}): pick another --name, or replace it with --force"
        )
    return name


__all__ = [
    "CLASS_LOGIT_GAP",
    "FAMILIES",
    "LOSSES",
    "StoredLatent",
    "as_images",
    "check_generator",
    "check_options",
    "invert",
    "invert_and_store",
    "learning_rate",
    "noise_regularizer",
    "normalize_noise_",
    "w_noise_scale",
    "w_stats",
]


def _encoded(encoder: str | os.PathLike, G, targets: torch.Tensor) -> torch.Tensor:
    """The encoder's answer for the photos ``targets`` (uint8 [N, R, R, 3]), one forward pass."""
    E = load_encoder(encoder, G, device=next(G.parameters()).device)
    with torch.no_grad():
        return E(as_images(targets, G.resolution, next(G.parameters()).device))
