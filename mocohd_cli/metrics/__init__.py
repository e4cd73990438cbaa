"""Measuring videos: feature statistics and the Fréchet distance (FVD and FID).

    from mocohd_cli.metrics import FeatureStats, frechet_distance
    real, fake = FeatureStats(), FeatureStats()
    real.update(features_real)                 # [N, D], batch after batch
    fake.update(features_fake)
    d = frechet_distance(real.mean, real.covariance(0), fake.mean, fake.covariance(0))

``frechet`` and ``stats`` are maths only (layer 3). The clip protocol of
StyleGAN-V (``mocohd_cli.metrics.protocol``) reads datasets and lives in the
recipes layer; it is not imported here, so the maths stays importable alone.
"""

from .feature_stats import FeatureStats
from .frechet import frechet_distance

__all__ = ["FeatureStats", "frechet_distance"]
