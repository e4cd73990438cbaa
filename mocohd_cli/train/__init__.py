"""Motion generator training (MoCoGAN-HD, ICLR 2021): ``mocohd train``.

    from mocohd_cli.train import TrainConfig, train
    result = train(TrainConfig(data="./voxceleb", image="ffhq-256", steps=20000))
    result.motion          # the exported motion model, also in the store as 'voxceleb'

``train_image`` (``mocohd_cli.train.image_trainer``) trains the StyleGAN2 image
generator itself. Single process, or many under torchrun (``torchrun --nproc_per_node=G -m
mocohd_cli train ...``): see ``distributed``.

The modules: ``config`` (the settings and their defaults), ``run`` (the
services both trainers' loops call: folder, resume, checkpoints, metrics,
events), ``motion_gan`` (the motion recipe, ``MotionGAN``), ``image_gan`` (the
image recipe, ``ImageGAN``), ``motion_trainer`` and ``image_trainer`` (the two
trainers, each with its loop), ``monitor`` (--monitor, --keep-best).
"""

from ..distributed import Dist
from .config import ImageTrainConfig, TrainConfig
from .motion_gan import GANConfig, MotionGAN
from .motion_trainer import TrainResult, train
from .run import load_checkpoint, run_dir

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
