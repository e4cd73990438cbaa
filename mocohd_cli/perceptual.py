"""How far apart two images look: the distances that ``invert`` minimises.

- ``VGG16``: the 13 convolutions of VGG16 (Simonyan and Zisserman 2015) in
  torchvision's ``features.N`` layout, and the LPIPS-style distance NVIDIA's
  projector (stylegan2-ada-pytorch ``projector.py``) measures with it:

      images in [-1, 1] -> [0, 255] -> area resize to 256 x 256 when larger
      -> [0, 1] -> ImageNet mean / std
      -> relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 (features.3, 8, 15, 22, 29)
      -> each divided by its L2 norm over channels (eps 1e-10, as LPIPS)
      distance = sum over the 5 layers of mean over pixels of sum over channels of (a - b)^2

  The channel weights LPIPS learns on top (its ``lin`` layers; NVIDIA's
  ``vgg16.pt`` carries them) are not used: every channel weighs 1.
- ``pixel_distance``: mean squared error plus 1 - SSIM averaged over 3
  scales; needs no weights.

Both return one distance per image, [N], so a batch of images is a batch of
independent problems.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .dict_config import DictConfig, check_int
from .errors import UsageError

FAMILY = "vgg16"
STAGES = (2, 2, 3, 3, 3)  # convolutions per stage (VGG16, configuration D)
WIDTHS = (64, 128, 256, 512, 512)  # output channels per stage
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZE_TO = 256  # larger images are area-resized to this size first (the projector: "VGG was built for 224x224")
EPS = 1e-10  # LPIPS normalize_tensor


def layout(widths=WIDTHS) -> tuple[list[tuple[int, int, int]], list[int]]:
    """((index in ``features``, in channels, out channels) of every convolution, indices of the
    ReLUs whose outputs are compared) for torchvision's ``vgg16().features``: each convolution
    is followed by a ReLU, each stage by a 2x2 max pool."""
    convs, taps, i, cin = [], [], 0, 3
    for n, cout in zip(STAGES, widths, strict=True):
        for _ in range(n):
            convs.append((i, cin, cout))
            cin, i = cout, i + 2
        taps.append(i - 1)
        i += 1  # the max pool
    return convs, taps


CONV_INDICES = tuple(i for i, _, _ in layout()[0])  # 0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28
TAP_INDICES = tuple(layout()[1])  # 3, 8, 15, 22, 29


@dataclass
class VGG16Config(DictConfig):
    """Channels of the five stages; (64, 128, 256, 512, 512) is VGG16. Smaller widths give a
    network of the same shape (the tests use one)."""

    widths: tuple = WIDTHS

    def __post_init__(self):
        if not isinstance(self.widths, (list, tuple)) or len(self.widths) != len(STAGES):
            raise UsageError(f"widths must list {len(STAGES)} channel counts, got {self.widths!r}")
        self.widths = tuple(check_int(w, "widths", hi=4096) for w in self.widths)

    def to_dict(self) -> dict:
        return {"widths": list(self.widths)}

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        out = {}
        for i, cin, cout in layout(self.widths)[0]:
            out[f"features.{i}.weight"] = (cout, cin, 3, 3)
            out[f"features.{i}.bias"] = (cout,)
        return out


class VGG16(nn.Module):
    """VGG16's convolutional part up to relu5_3 (``features.0`` .. ``features.29``), frozen
    use only: ``embed`` images, then ``distance`` between embeddings."""

    family = FAMILY

    def __init__(self, cfg: VGG16Config | None = None):
        super().__init__()
        self.cfg = cfg or VGG16Config()
        convs, taps = layout(self.cfg.widths)
        conv_at = {i: (cin, cout) for i, cin, cout in convs}
        layers = []
        for i in range(taps[-1] + 1):
            if i in conv_at:
                layers.append(nn.Conv2d(*conv_at[i], kernel_size=3, padding=1))
            elif i - 1 in conv_at:
                layers.append(nn.ReLU(inplace=True))
            else:
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        self.features = nn.Sequential(*layers)
        self.taps = tuple(taps)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] in [-1, 1] -> the network's input, as the projector prepares images."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise UsageError(f"images must be [N, 3, H, W], got {list(images.shape)}")
        x = (images.float() + 1) * 127.5
        if x.shape[2] > RESIZE_TO:
            x = F.interpolate(x, size=(RESIZE_TO, RESIZE_TO), mode="area")
        return (x / 255 - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The five tapped ReLU outputs of a preprocessed batch."""
        out = []
        x = x.contiguous(memory_format=torch.channels_last)
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                out.append(x)
        return out

    def embed(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Images [N, 3, H, W] in [-1, 1] -> the five feature maps, each of unit L2 norm over channels."""
        feats = [f.float() for f in self(self.preprocess(images))]  # float32 also under autocast
        return [f / (f.square().sum(dim=1, keepdim=True).sqrt() + EPS) for f in feats]

    @staticmethod
    def distance(a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
        """[N]: per layer the squared differences summed over channels, averaged over pixels; summed over layers."""
        return sum((fa - fb).square().sum(dim=1).mean(dim=(1, 2)) for fa, fb in zip(a, b, strict=True))


# ----------------------------------------------------------------------------
# The pixel distance: no weights needed.

SSIM_SIGMA = 1.5  # Wang et al. 2004: an 11 x 11 Gaussian window, sigma 1.5
SSIM_SIZE = 11
SSIM_C1, SSIM_C2 = 0.01**2, 0.03**2  # (K1 L)^2, (K2 L)^2 for L = 1
SSIM_SCALES = 3


def _blur(x: torch.Tensor, size: int) -> torch.Tensor:
    """A separable Gaussian blur per channel, same size out (edges replicated)."""
    r = torch.arange(size, dtype=x.dtype, device=x.device) - (size - 1) / 2
    g = torch.exp(-r.square() / (2 * SSIM_SIGMA**2))
    g = g / g.sum()
    c = x.shape[1]
    p = size // 2
    x = F.pad(x, (p, p, p, p), mode="replicate")
    x = F.conv2d(x, g.view(1, 1, 1, size).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(x, g.view(1, 1, size, 1).repeat(c, 1, 1, 1), groups=c)


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Structural similarity of images in [0, 1], [N, C, H, W] -> [N] (mean over pixels and
    channels); the window shrinks to the image on images smaller than 11 px."""
    size = min(SSIM_SIZE, a.shape[2], a.shape[3])
    size -= 1 - size % 2  # odd
    mu_a, mu_b, aa, bb, ab = _blur(torch.cat([a, b, a * a, b * b, a * b], dim=1), size).chunk(5, dim=1)
    var_a = aa - mu_a.square()
    var_b = bb - mu_b.square()
    cov = ab - mu_a * mu_b
    s = ((2 * mu_a * mu_b + SSIM_C1) * (2 * cov + SSIM_C2)) / (
        (mu_a.square() + mu_b.square() + SSIM_C1) * (var_a + var_b + SSIM_C2)
    )
    return s.mean(dim=(1, 2, 3))


def pixel_distance(a: torch.Tensor, b: torch.Tensor, scales: int = SSIM_SCALES) -> torch.Tensor:
    """[N]: mean squared error of images in [-1, 1] taken to [0, 1], plus 1 - SSIM averaged over
    ``scales`` scales (each half the size of the one before; fewer on images too small for them)."""
    if a.shape != b.shape or a.ndim != 4:
        raise UsageError(
            f"images must be two [N, C, H, W] batches of one shape, got {list(a.shape)} and {list(b.shape)}"
        )
    a, b = (a.float() + 1) / 2, (b.float() + 1) / 2
    mse = (a - b).square().mean(dim=(1, 2, 3))
    total, n = 0, 0
    for s in range(scales):
        if s:
            if min(a.shape[2:]) < 4:
                break
            a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
        total, n = total + ssim(a, b), n + 1
    return mse + (1 - total / n)


__all__ = ["CONV_INDICES", "FAMILY", "TAP_INDICES", "VGG16", "VGG16Config", "pixel_distance", "ssim"]
