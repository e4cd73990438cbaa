"""Readers for the weight files people have, all converted to the canonical format.

``read_any(path)`` sniffs the file (not its name) and returns a
``ConvertedModel``: kind, family, config, tensors and provenance.

    canonical .safetensors   our own files
    rosinality .pt           torch.save of {'g_ema': state_dict, 'latent_avg': ...}
    NVIDIA .pkl              stylegan2-ada-pytorch network pickle (safe unpickler)
    BigGAN-deep .bin         pytorch-pretrained-BigGAN state dict (+ config.json beside it)
    I3D TorchScript .pt      StyleGAN-V's i3d_torchscript.pt, read as data (never torch.jit.load)
    Inception .pth           pytorch-fid's pt_inception-2015-12-05 state dict
    VGG16 .pth/.safetensors  torchvision's vgg16 state dict, timm's vgg16.tv_in1k (features only)
    PCA folder / .npy        MoCoGAN-HD's pca_comp.npy, pca_stdev.npy, ... (allow_pickle=False)

Whatever the format, nothing is built from a file whose config does not fit its
tensors' shapes, and no tensor with NaN or infinite values gets through
(``checks``); a canonical file's recorded weights sha256 must match its tensors.
"""

from . import biggan, canonical, checks, i3d, inception, mocogan_hd, nvidia, rosinality, torch_io, torchscript, vgg
from .reading import UNRECOGNISED, ConvertedModel, read_any, sniff

__all__ = [
    "UNRECOGNISED",
    "ConvertedModel",
    "biggan",
    "canonical",
    "checks",
    "i3d",
    "inception",
    "mocogan_hd",
    "nvidia",
    "read_any",
    "rosinality",
    "sniff",
    "torch_io",
    "torchscript",
    "vgg",
]
