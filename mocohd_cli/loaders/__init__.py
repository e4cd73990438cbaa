"""Models by name: the store-backed loaders and savers of every kind of model.

    G = load_image_generator("ffhq")            # a name, a store entry or a path
    M = load_motion("voxceleb")
    basis, path, computed = pca_for("ffhq")
    header = import_model("stylegan2-ffhq-config-f.pt", name="ffhq")

One module per kind: ``image_generators``, ``motion_models``, ``pca_bases``,
``latents``, ``encoder_models``, ``detector_models``, ``vgg16``; ``catalog`` imports, stores and
describes any of them, ``listing`` lists them (``mocohd list``, ``info``, the studio). The
networks themselves live in ``generators``, ``motion``, ``detectors`` and ``perceptual``; the
files in ``formats``.
"""

from .catalog import ModelInfo, describe, import_model, store_model
from .encoder_models import load_encoder, save_encoder
from .image_generators import image_identity, load_image_generator
from .motion_models import load_motion, save_motion
from .pca_bases import pca_for

__all__ = [
    "ModelInfo",
    "describe",
    "image_identity",
    "import_model",
    "load_encoder",
    "load_image_generator",
    "load_motion",
    "pca_for",
    "save_encoder",
    "save_motion",
    "store_model",
]
