"""Training videos: a dataset folder scanned, prepared once into a clip cache
(``clips``), and clips served from it; ``trajectories``: the frames encoded into an image
generator's latents, cached beside the clips; ``procedural`` makes a synthetic dataset.

    info = prepare("./voxceleb", frame_size=128)
    ds = ClipDataset(info.cache, frames=16, time_step=2)
"""

from .clips import (
    CACHE_VERSION,
    IMAGE_EXTS,
    MAX_FRAME_SIZE,
    VIDEO_EXTS,
    ClipDataset,
    EpochSampler,
    PreparedData,
    VideoSource,
    cache_dir,
    natural_key,
    prepare,
    probe_size,
    scan,
    signature,
    square_resize,
    to_model_input,
)

__all__ = [
    "CACHE_VERSION",
    "IMAGE_EXTS",
    "MAX_FRAME_SIZE",
    "VIDEO_EXTS",
    "ClipDataset",
    "EpochSampler",
    "PreparedData",
    "VideoSource",
    "cache_dir",
    "natural_key",
    "prepare",
    "probe_size",
    "scan",
    "signature",
    "square_resize",
    "to_model_input",
]
