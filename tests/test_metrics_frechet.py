"""The Fréchet distance (mocohd_cli/metrics/frechet.py): closed forms, scipy's sqrtm restatement,
singular covariances, symmetry, and one-line refusals."""

import numpy as np
import pytest
import scipy.linalg
import torch

from mocohd_cli.errors import UsageError
from mocohd_cli.metrics import FeatureStats, frechet_distance


def sqrtm_reference(mu1, s1, mu2, s2):
    """The formula as pytorch-fid and StyleGAN-V write it, in float64."""
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    covmean = np.real(covmean)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def random_spd(rng, d, cond=10.0):
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return (q * np.linspace(1.0, cond, d)) @ q.T


def test_diagonal_closed_form():
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0.1, 4, 7), rng.uniform(0.1, 4, 7)
    mu = rng.standard_normal(7)
    want = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2) + mu @ mu
    assert frechet_distance(mu, np.diag(a), np.zeros(7), np.diag(b)) == pytest.approx(want, rel=1e-12)


def test_commuting_covariances_closed_form():
    """Same eigenvectors: sqrt(S1 S2) = Q sqrt(a b) Q^T, the distance is sum (sqrt a - sqrt b)^2."""
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.standard_normal((9, 9)))
    a, b = rng.uniform(0.5, 3, 9), rng.uniform(0.5, 3, 9)
    s1, s2 = (q * a) @ q.T, (q * b) @ q.T
    want = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2) + 4.0
    assert frechet_distance(np.full(9, 2 / 3), s1, np.zeros(9), s2) == pytest.approx(want, rel=1e-10)


@pytest.mark.parametrize("d", [4, 64])
def test_equals_the_sqrtm_restatement(d):
    rng = np.random.default_rng(d)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    s1, s2 = random_spd(rng, d), random_spd(rng, d, cond=5)
    ours = frechet_distance(mu1, s1, mu2, s2)
    assert ours == pytest.approx(sqrtm_reference(mu1, s1, mu2, s2), rel=1e-6)
    # torch tensors of any float dtype give the same float64 result
    t = [torch.from_numpy(x) for x in (mu1, s1, mu2, s2)]
    assert frechet_distance(*t) == ours
    assert frechet_distance(t[0].float(), t[1].float(), t[2].float(), t[3].float()) == pytest.approx(ours, rel=1e-5)


def test_symmetric_and_zero_against_itself():
    rng = np.random.default_rng(2)
    mu1, mu2 = rng.standard_normal(16), rng.standard_normal(16)
    s1, s2 = random_spd(rng, 16), random_spd(rng, 16)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(frechet_distance(mu2, s2, mu1, s1), rel=1e-10)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-9)


def test_fewer_samples_than_dimensions():
    """Rank-deficient covariances (10 samples of 64-d features) give a finite value >= 0, ~0 against
    themselves, and a larger value against another set."""
    rng = np.random.default_rng(3)
    a, b = FeatureStats(), FeatureStats()
    xa = rng.standard_normal((10, 64))
    a.update(xa)
    b.update(rng.standard_normal((10, 64)) + 0.5)
    same = frechet_distance(a.mean, a.cov, a.mean, a.cov)
    other = frechet_distance(a.mean, a.cov, b.mean, b.cov)
    assert np.isfinite(other) and other > 0 and 0 <= same < 1e-8 * other
    zero = np.zeros((64, 64))
    assert frechet_distance(np.zeros(64), zero, np.zeros(64), zero) == 0.0


def test_refusals_are_one_line():
    eye = np.eye(3)
    for args, part in [
        ((np.zeros(3), eye, np.zeros(4), np.eye(4)), "one length"),
        ((np.zeros(3), np.eye(4), np.zeros(3), eye), r"sigma1 must be \[3, 3\]"),
        ((np.zeros(3), eye, np.array([0, np.nan, 0]), eye), "mu2 holds NaN"),
        ((np.zeros(3), eye, np.zeros(3), np.full((3, 3), np.inf)), "sigma2 holds NaN or infinite"),
    ]:
        with pytest.raises(UsageError, match=part) as e:
            frechet_distance(*args)
        assert "\n" not in str(e.value)
