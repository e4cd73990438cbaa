"""Streaming feature statistics (mocohd_cli/metrics/feature_stats.py) against numpy, merges, offsets,
max_items and the state dict."""

import numpy as np
import pytest
import torch

from mocohd_cli.errors import MocohdError, UsageError
from mocohd_cli.metrics import FeatureStats


def fed(x, cuts, **kw):
    s = FeatureStats(**kw)
    for a, b in zip([0, *cuts], [*cuts, len(x)], strict=True):
        s.update(x[a:b])
    return s


def test_equals_numpy_in_uneven_chunks():
    x = np.random.default_rng(0).standard_normal((301, 12)) * np.arange(1, 13)
    s = fed(torch.from_numpy(x).float(), [1, 2, 50, 51, 200])  # float32 rows, float64 sums
    x32 = x.astype(np.float32).astype(np.float64)
    assert s.count == 301 and s.mean.dtype == torch.float64
    np.testing.assert_allclose(s.mean.numpy(), x32.mean(0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(s.cov.numpy(), np.cov(x32, rowvar=False), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(s.covariance(0).numpy(), np.cov(x32, rowvar=False, bias=True), rtol=1e-10, atol=1e-12)


def test_merge_of_two_halves_equals_the_whole():
    x = np.random.default_rng(1).standard_normal((100, 5))
    whole = fed(x, [30])
    a, b = fed(x[:37], [10]), fed(x[37:], [])
    a.merge(b).merge(FeatureStats())
    assert a.count == 100
    np.testing.assert_allclose(a.mean.numpy(), whole.mean.numpy(), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(a.cov.numpy(), whole.cov.numpy(), rtol=1e-12, atol=1e-14)
    empty = FeatureStats().merge(whole)
    assert torch.equal(empty.cov, whole.cov)


def test_large_offsets_keep_float64_accuracy():
    """Features far from 0 (1e6 + unit noise): the raw-moment form sum(x x^T)/n - mean mean^T is off
    by ~1e-3 here (StyleGAN-V's get_mean_cov); the centred merge keeps the covariance to ~1e-9."""
    rng = np.random.default_rng(2)
    x = 1e6 + rng.standard_normal((400, 4))
    s = fed(x, [7, 100, 399])
    np.testing.assert_allclose(s.cov.numpy(), np.cov(x, rowvar=False), rtol=1e-8, atol=1e-9)


def test_max_items_cuts_and_stops():
    x = np.arange(30.0).reshape(10, 3)
    s = FeatureStats(max_items=7)
    assert s.update(x[:4]) == 4 and not s.is_full()
    assert s.update(x[4:]) == 3 and s.is_full()
    assert s.update(x) == 0 and s.count == 7
    np.testing.assert_allclose(s.mean.numpy(), x[:7].mean(0))
    with pytest.raises(UsageError, match="exceed max_items"):
        s.merge(fed(x, []))


def test_state_dict_round_trip_and_errors():
    x = np.random.default_rng(3).standard_normal((20, 6))
    s = fed(x, [5], max_items=100)
    r = FeatureStats.from_state_dict(s.state_dict())
    assert (r.count, r.max_items) == (20, 100) and torch.equal(r.cov, s.cov) and torch.equal(r.mean, s.mean)
    assert FeatureStats.from_state_dict(FeatureStats().state_dict()).count == 0
    with pytest.raises(MocohdError, match="not feature statistics"):
        FeatureStats.from_state_dict({**s.state_dict(), "m2": torch.zeros(5, 5)})
    with pytest.raises(MocohdError, match="at least 2 items"):
        _ = fed(x[:1], []).cov
    with pytest.raises(MocohdError, match="at least 1 item"):
        _ = FeatureStats().mean
    with pytest.raises(UsageError, match="4 dimensions, earlier ones 6"):
        s.update(np.zeros((2, 4)))
    with pytest.raises(UsageError, match=r"\[N, D\]"):
        s.update(np.zeros(4))
    with pytest.raises(MocohdError, match="NaN"):
        FeatureStats().update(np.full((2, 2), np.nan))
