"""mocohd: high-resolution video synthesis with pretrained image generators
(after MoCoGAN-HD, ICLR 2021).

Library API::

    from mocohd_cli import load_image_generator
    G = load_image_generator("demo")                  # name, store entry or path
    w = G.mapping(torch.randn(4, G.z_dim))            # [4, w_dim]
    img = G.synthesis(w, noise_mode="const")          # [4, 3, R, R] in [-1, 1]
"""

__version__ = "0.1.0"

from .errors import MocohdError  # noqa: E402
from .models import describe, import_model, load_image_generator  # noqa: E402

__all__ = ["MocohdError", "__version__", "describe", "import_model", "load_image_generator"]
