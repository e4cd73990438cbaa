"""Motion generator training (MoCoGAN-HD, ICLR 2021): ``mocohd train``.

    from mocohd_cli.train import TrainConfig, train
    result = train(TrainConfig(data="./voxceleb", image="ffhq-256", steps=20000))
    result.motion          # the exported motion model, also in the store as 'voxceleb'

``train_image`` (``mocohd_cli.train.image``) trains the StyleGAN2 image
generator itself. Single process, or many under torchrun (``torchrun --nproc_per_node=G -m
mocohd_cli train ...``): see ``distributed``.

The modules: ``config`` (the settings and their defaults), ``run`` (the run
both trainers share: folder, resume, checkpoints, the loop), ``steps`` (the
motion recipe, ``MotionGAN``), ``image_gan`` (the image recipe, ``ImageGAN``),
``trainer`` and ``image`` (the two trainers), ``distributed``.
"""

from ..distributed import Dist
from .config import ImageTrainConfig, TrainConfig
from .run import load_checkpoint, run_dir
from .steps import GANConfig, MotionGAN
from .trainer import TrainResult, train

__all__ = [
    "Dist",
    "GANConfig",
    "ImageTrainConfig",
    "MotionGAN",
    "TrainConfig",
    "TrainResult",
    "load_checkpoint",
    "run_dir",
    "train",
]
