"""Motion generators: the LSTM that produces latent trajectories (``generator``).

    M = MotionGenerator(MotionConfig(w_dim=512, n_pca=384), components, stdev)
    ws = M(w1, n_frames=32)                   # [B, 32, w_dim]

Its files (kind ``motion``, family ``FAMILY``) are read, written and
resolved by name in ``loaders.motion_models`` (``load_motion``, ``save_motion``);
the official MoCoGAN-HD checkpoints in ``formats.mocogan_hd``.
"""

from .generator import FAMILY, MotionConfig, MotionGenerator, MotionState, oscillator_bank

__all__ = ["FAMILY", "MotionConfig", "MotionGenerator", "MotionState", "oscillator_bank"]
