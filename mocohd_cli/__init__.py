"""mocohd: high-resolution video synthesis with pretrained image generators
(after MoCoGAN-HD, ICLR 2021).

Library API::

    from mocohd_cli import load_image_generator, load_motion, fit_pca, render_frames
    G = load_image_generator("demo")                  # name, store entry or path
    w = G.mapping(torch.randn(4, G.z_dim))            # [4, w_dim]
    img = G.synthesis(w, noise_mode="const")          # [4, 3, R, R] in [-1, 1]
    M = load_motion("demo")
    ws = M(w, n_frames=16)                            # [4, 16, w_dim]
    for frame in render_frames(M, G, frames=16):      # [videos, R, R, 3] uint8
        ...
"""

__version__ = "0.1.0"

from .errors import MocohdError
from .loaders import describe, import_model, load_image_generator
from .loaders.motion_models import load_motion
from .loaders.pca_bases import pca_for
from .motion import MotionGenerator
from .pca import PCABasis, fit_pca
from .render import render_frames

__all__ = [
    "MocohdError",
    "MotionGenerator",
    "PCABasis",
    "__version__",
    "describe",
    "fit_pca",
    "import_model",
    "load_image_generator",
    "load_motion",
    "pca_for",
    "render_frames",
]
