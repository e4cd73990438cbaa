"""The frame recipe: how latents become the frames of videos, for rendering and training alike.

    labels = check_pair(M, G, classes=["golden_retriever"], truncation=0.7)   # before any work
    w1 = draw_w1(G, videos, generator)                                        # z -> w_1, per video
    noise = VideoNoise(G, videos, "fixed", generator)                          # per-layer noise maps
    images = synthesize(G, ws, noise(video_of), classes, truncation)          # [N, 3, R, R] in [-1, 1]
    small = synthesize(G, ws, noise(video_of), size=64)                       # [N, 3, 64, 64]: a quick look

``synthesize`` is the one place where w's become images: the truncation
lerp toward ``w_avg`` (BigGAN: also its batch-norm statistics), the class
vectors of a class-conditional generator and the per-layer noise maps.
Rendering (``render.render_frames``, time-major batches of several videos)
and training (``train.motion_gan.MotionGAN.fake_clips``, clips [B, T] whose
gradients flow through G into the motion model) both call it, so training
sees exactly the frames rendering makes.

``check_pair`` is the one compatibility check of a motion model and an image
generator (w sizes, classes, truncation), worded for library users.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .classes import one_hot, parse_classes
from .edits import LatentEdit
from .errors import MocohdError, UsageError
from .generators import synthesis_kwargs

NOISE_MODES = ("fixed", "random", "off")


# ----------------------------------------------------------------------------
# Checks


def check_noise(mode: str) -> str:
    """``mode`` if it is one of NOISE_MODES, else a UsageError."""
    if mode not in NOISE_MODES:
        raise UsageError(f"noise must be one of {', '.join(NOISE_MODES)}, got {mode!r}")
    return mode


def check_truncation(truncation, G=None) -> float:
    """``truncation`` as a float: finite and >= 0 (1: none, < 1 toward the average w, > 1 away
    from it); for a class-conditional generator (BigGAN) in (0, 1], the range of its stored
    batch-norm statistics. Else a UsageError."""
    try:
        if isinstance(truncation, bool):
            raise TypeError
        psi = float(truncation)
    except (TypeError, ValueError):
        raise UsageError(f"truncation must be a number, got {truncation!r}") from None
    if not math.isfinite(psi) or psi < 0:
        raise UsageError(
            "truncation must be a finite number >= 0 (1: none, < 1 toward the average, "
            f"> 1 away from it), got {truncation}"
        )
    if G is not None and G.c_dim and not 0 < psi <= 1:
        raise UsageError(
            f"truncation must be in (0, 1] for {G.family} (its stored batch-norm statistics), got {truncation}"
        )
    return psi


def check_size(size, G=None, name: str = "size", top: int | None = None) -> int | None:
    """``size`` (the side of the frames, in pixels) as an int: None (the generator's resolution)
    or a power of two >= 4, and at most ``G``'s resolution when ``G`` is given (else at most
    ``top``, when given). Else a UsageError naming the setting ``name``."""
    if size is None:
        return None
    top = G.resolution if G is not None else top
    n = 0
    if isinstance(size, (int, float)) and not isinstance(size, bool) and math.isfinite(size) and size == int(size):
        n = int(size)
    if n < 4 or n & (n - 1) or (top is not None and n > top):
        made = f" ({_image_name(G)} makes {top} px frames)" if G is not None else ""
        where = f" in 4..{top}{made}" if top is not None else ", at least 4"
        raise UsageError(f"{name} must be a power of two{where}, got {size!r}")
    return n


def _image_name(G) -> str:  # "the stylegan2 image generator 'ffhq'"
    name = (getattr(G, "identity", None) or {}).get("name")
    return f"the {G.family} image generator" + (f" '{name}'" if name else "")


def check_pair(M, G, classes=None, truncation: float = 1.0) -> list[int]:
    """Check that motion model ``M`` can drive image generator ``G`` with these classes and this
    truncation, before any work; returns the class numbers (ImageNet names parsed; [] for none).

    ``M`` None checks the generator's side alone. Raises MocohdError when the w sizes differ,
    when classes are given to an unconditional generator, or when a class is unknown or out of
    range; UsageError when the truncation is not one ``G`` can take (``check_truncation``).
    """
    if M is not None and M.cfg.w_dim != G.w_dim:
        raise MocohdError(
            f"the motion model moves in a {M.cfg.w_dim}-d latent space but {_image_name(G)} has a "
            f"{G.w_dim}-d w: they cannot be combined"
        )
    check_truncation(truncation, G)
    if isinstance(classes, (str, int)):
        classes = [classes]
    if not G.c_dim:
        if classes:
            raise MocohdError(
                f"classes are for class-conditional image generators (BigGAN); {_image_name(G)} is unconditional"
            )
        return []
    return parse_classes(classes, G.c_dim)


# ----------------------------------------------------------------------------
# Per-video draws


def draw_w1(G, videos: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """Each video's first w, [videos, w_dim]: z ~ N(0, I) drawn on the CPU (the same on any
    device for a seeded ``generator``), mapped by ``G.mapping`` without gradients."""
    z = torch.randn(videos, G.z_dim, generator=generator)
    with torch.no_grad():
        return G.mapping(z.to(device if device is not None else _device(G)))


def draw_classes(G, videos: int, generator: torch.Generator | None = None, pool=None) -> torch.Tensor:
    """Each video's class, [videos] long (CPU): drawn uniformly from ``pool`` (all classes when empty)."""
    pool = torch.as_tensor(list(pool), dtype=torch.long) if pool else torch.arange(G.c_dim)
    return pool[torch.randint(len(pool), (videos,), generator=generator)]


class VideoNoise:
    """The per-layer noise maps of the frames of ``videos`` videos.

    'fixed': drawn once per video (here, from ``generator``) and shared by all of its frames,
    as in the paper, in training and by default in rendering; 'random': drawn for every frame,
    frame by frame, so the maps do not depend on how frames are batched; 'off': no noise.
    Generators without noise inputs (BigGAN) get none in every mode. Draws are made on the
    CPU with a CPU ``generator``, so a seed gives the same maps on any device.
    """

    def __init__(self, G, videos: int, mode: str = "fixed", generator: torch.Generator | None = None, device=None):
        self.G, self.mode, self.generator = G, check_noise(mode), generator
        self.device = device if device is not None else _device(G)
        self.maps = G.synthesis.make_noise(videos, generator=generator, device=self.device) if mode == "fixed" else None

    def __call__(self, video_of: torch.Tensor) -> list | None:
        """The maps of frames of videos ``video_of`` [N] (one entry per frame): per layer
        [N, 1, r, r]; None for 'off'."""
        if self.mode == "fixed":
            return [n[video_of] for n in self.maps]
        if self.mode == "random":
            per_frame = [
                self.G.synthesis.make_noise(1, generator=self.generator, device=self.device)
                for _ in range(len(video_of))
            ]
            return [torch.cat(layer) for layer in zip(*per_frame, strict=True)]
        return None


def class_vectors(G, labels, t: torch.Tensor, total: int, to: int | None = None, device=None) -> torch.Tensor:
    """The class vectors of frames ``t`` [n] (frame numbers) of videos showing classes ``labels``
    [V] (or class vectors [V, c_dim]: mixes, e.g. an inverted photo's), time-major (frame t of every
    video): [n * V, c_dim]. With ``to`` each video's vector moves linearly from its class (frame 0)
    to class ``to`` (frame ``total`` - 1)."""
    if torch.is_tensor(labels) and labels.is_floating_point():
        start = labels.float().to(device if device is not None else labels.device)
    else:
        start = one_hot(labels, G.c_dim, device)  # [V, c_dim]
    end = start if to is None else one_hot([to], G.c_dim, device).expand_as(start)
    alpha = t.to(device=start.device, dtype=torch.float32) / max(total - 1, 1)
    return torch.lerp(start[None], end[None], alpha[:, None, None]).reshape(len(t) * start.shape[0], -1)


# ----------------------------------------------------------------------------
# The recipe


def synthesize(
    G,
    ws: torch.Tensor,
    noise: list | None = None,
    classes=None,
    truncation: float = 1.0,
    dtype: torch.dtype | None = None,
    camera: torch.Tensor | None = None,
    edit: LatentEdit | None = None,
    size: int | None = None,
) -> torch.Tensor:
    """Frames from w's: [N, w_dim] -> [N, 3, R, R] float32 in [-1, 1]; differentiable w.r.t. ``ws``.

    ``truncation`` psi != 1 first moves each w to ``w_avg + psi (w - w_avg)`` (BigGAN: w_avg is 0,
    and psi also selects its batch-norm statistics). ``noise``: per-layer maps, one per frame
    (``VideoNoise``), or None for no noise. ``classes`` (class-conditional generators only):
    class numbers [N] (one-hot rows) or class vectors [N, c_dim] (mixes). ``dtype``: the
    synthesis's compute dtype (e.g. torch.bfloat16), None for the dtype of ``ws``. ``camera``
    [N, 3, 3] (StyleGAN3 only): each frame's camera, moving the view through the generator's input
    transform (``generators.stylegan3.camera_matrix``). ``edit`` (``edits.LatentEdit``): the
    truncation on its cutoff's w's only, then its edits added to every frame's w's. ``size``
    (``check_size``: a power of two up to R): [N, 3, size, size] frames, for a quick preview.
    StyleGAN2 stops its synthesis at the block of that resolution (the image its skip
    connections have summed so far: the coarse layers' picture, without the finer blocks' detail,
    and without their cost); StyleGAN3 and BigGAN, which have no image before their last layer,
    synthesise at R and shrink by averaging (``F.interpolate``'s 'area', an exact box filter).
    """
    size = check_size(size, G)
    if ws.shape[-1] != G.w_dim:
        raise UsageError(f"ws are {ws.shape[-1]}-d but {_image_name(G)} has a {G.w_dim}-d w")
    if classes is not None and not G.c_dim:
        raise UsageError(
            f"classes are for class-conditional image generators (BigGAN); {_image_name(G)} is unconditional"
        )
    if edit is not None:
        ws = edit(ws, G.mapping.w_avg, truncation)
    elif truncation != 1:
        ws = G.mapping.w_avg.lerp(ws, truncation)
    if noise is None:
        noise = [None] * len(G.synthesis.layers())
    if classes is not None and not (torch.is_tensor(classes) and classes.is_floating_point()):
        labels = classes.tolist() if torch.is_tensor(classes) else list(classes)
        classes = one_hot(labels, G.c_dim, ws.device)
    cond = synthesis_kwargs(G, classes, truncation)
    if camera is not None:
        if getattr(G, "family", None) != "stylegan3":
            raise UsageError(f"a camera track moves StyleGAN3's input transform; {_image_name(G)} has none")
        cond["camera"] = camera
    if size is None or size == G.resolution:
        return G.synthesis(ws, noise=noise, dtype=dtype, **cond).float()
    if G.family == "stylegan2":
        return G.synthesis(ws, noise=noise, dtype=dtype, size=size, **cond).float()
    return F.interpolate(G.synthesis(ws, noise=noise, dtype=dtype, **cond).float(), size=(size, size), mode="area")


def _device(G) -> torch.device:
    return next(G.parameters()).device
