"""The cross-domain image discriminator, its contrastive loss and queue, the
augmentations, and the distributed epoch sampler."""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mocohd_cli.augment import affine_thetas, cutout, cutout_boxes, warp
from mocohd_cli.data import EpochSampler
from mocohd_cli.discriminators import ContrastiveDiscriminator, SNResNetDiscriminator, info_nce
from mocohd_cli.discriminators.snresnet import channel_multipliers


def _official_info_nce(a, b, queue, T):
    """The authors' loss restated: softmax over [a; b; queue] cosine similarities
    times 1/T, with each row's own similarity multiplied by 0 (kept as logit 0),
    -log p of the partner, summed over 2n rows and divided by 2n."""
    rows, keys = torch.cat([a, b]), torch.cat([a, b, queue])
    sim = torch.stack([torch.stack([F.cosine_similarity(r, k, dim=0, eps=1e-8) for k in keys]) for r in rows])
    m = torch.full_like(sim, 1 / T)
    m.fill_diagonal_(0.0)
    p = torch.softmax(sim * m, dim=1)
    n = a.shape[0]
    total = sum(-torch.log(p[i, i + n]) - torch.log(p[i + n, i]) for i in range(n))
    return total / (2 * n)


def test_info_nce_matches_the_official_formula():
    g = torch.Generator().manual_seed(0)
    a, b, q = torch.randn(3, 8, generator=g), torch.randn(3, 8, generator=g), torch.randn(5, 8, generator=g)
    torch.testing.assert_close(info_nce(a, b, q, 0.07), _official_info_nce(a, b, q, 0.07), rtol=1e-5, atol=1e-5)
    # aligned positives and far negatives give a small loss; swapped partners a large one
    assert float(info_nce(a, a * 2, -a.repeat(2, 1), 0.07)) < float(info_nce(a, b, q, 0.07))


def test_sn_resnet_shapes_channels_and_spectral_norm():
    assert channel_multipliers(128) == [1, 2, 4, 8, 16, 16]  # BigGAN's D at 128: 5 halvings, one block at 4x4
    assert channel_multipliers(64) == [1, 2, 4, 8, 16]
    assert channel_multipliers(256) == [1, 2, 4, 8, 8, 16, 16]
    torch.manual_seed(0)
    D = SNResNetDiscriminator(32, channels=4, proj_dim=16)
    score, proj = D(torch.randn(5, 3, 32, 32))
    assert score.shape == (5,) and proj.shape == (5, 16)
    assert D(torch.zeros(1, 3, 32, 32), proj_only=True).shape == (1, 16)
    for _ in range(30):  # power iterations converge: every effective weight has spectral norm 1
        D(torch.randn(2, 3, 32, 32))
    D.eval()
    for m in D.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            sigma = torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2)
            assert float(sigma) == pytest.approx(1.0, abs=0.02)
    with pytest.raises(Exception, match="power-of-two"):
        SNResNetDiscriminator(48)


def test_ema_and_queue():
    torch.manual_seed(0)
    D = SNResNetDiscriminator(16, channels=2, proj_dim=4)
    C = ContrastiveDiscriminator(D, proj_dim=4, queue=10, momentum=0.9, world_batch=4)
    assert C.length == 8  # whole global batches
    before = [p.detach().clone() for p in C.ema.parameters()]
    with torch.no_grad():
        for p in C.D.parameters():
            p.add_(1.0)
    C.update_ema()
    for b, p, q in zip(before, C.D.parameters(), C.ema.parameters()):
        torch.testing.assert_close(q, 0.9 * b + 0.1 * p.detach())
        assert not q.requires_grad
    for i in range(3):
        C.enqueue(torch.full((4, 4), float(i)), torch.full((4, 4), -float(i)))
    assert int(C.queue_ptr) == 4  # 0 -> 4 -> 0 (wrapped at 8) -> 4
    assert torch.equal(C.queue_first[:4], torch.full((4, 4), 2.0)) and torch.equal(C.queue_first[4:8], torch.full((4, 4), 1.0))
    assert torch.equal(C.queue_later[:4], torch.full((4, 4), -2.0))
    loss = C.loss(*torch.randn(4, 2, 4).unbind(0))
    assert loss.ndim == 0 and torch.isfinite(loss)


def test_cutout_boxes_follow_the_official_ranges():
    g = torch.Generator().manual_seed(0)
    top, left, side = cutout_boxes(4000, 64, g)
    assert side.min() >= round(64 * 0.125 - 0.5) and side.max() <= round(64 * 0.25 - 0.5)
    assert top.min() >= 0 and left.min() >= 0 and (top + side).max() <= 64 and (left + side).max() <= 64
    # each box touches the band along one border: top or left within the first quarter, or past the last
    near = (top <= 0.25 * 63) | (left <= 0.25 * 63) | (top >= 0.75 * 63 - 1) | (left >= 0.75 * 63 - 1)
    assert bool(near.all())
    x = torch.ones(4000, 1, 64, 64)
    y = cutout(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close((1 - y).sum(dim=(1, 2, 3)), (side * side).float())


def test_warp_is_seeded_and_does_one_thing_per_image():
    x = torch.rand(64, 3, 16, 16)
    a = warp(x, torch.Generator().manual_seed(3))
    b = warp(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == x.shape
    # replay the draws to check each image against its chosen warp
    g = torch.Generator().manual_seed(3)
    cut = cutout(x, g)
    choice = torch.randint(3, (64,), generator=g)
    shift = (torch.rand(64, generator=g, dtype=torch.float64) - 0.5).float()
    channel = torch.randint(4, (64,), generator=g)
    assert {0, 1, 2} <= set(choice.tolist())
    for i in range(64):
        if choice[i] == 0:
            torch.testing.assert_close(a[i], cut[i].flip(-1))
        elif choice[i] == 1:
            expected = cut[i].clone()
            if channel[i] == 0:
                expected += shift[i]
            else:
                expected[channel[i] - 1] += shift[i]
            torch.testing.assert_close(a[i], expected)
        else:
            assert not torch.equal(a[i], cut[i])  # an affine warp with a random rotation


def test_affine_thetas_are_rotations_scales_and_translations():
    th = affine_thetas(1000, torch.Generator().manual_seed(0))
    lin = th[:, :, :2]
    s = torch.linalg.det(lin).sqrt()
    assert float(s.min()) >= 0.95 - 1e-5 and float(s.max()) <= 1.05 + 1e-5
    torch.testing.assert_close(lin[:, 0, 0], lin[:, 1, 1])
    torch.testing.assert_close(lin[:, 0, 1], -lin[:, 1, 0])
    assert float(th[:, :, 2].abs().max()) <= 0.1
    angles = torch.atan2(lin[:, 1, 0], lin[:, 0, 0])
    assert float(angles.min()) < -0.9 * math.pi and float(angles.max()) > 0.9 * math.pi


def test_epoch_sampler_splits_covers_and_resumes():
    s0, s1 = EpochSampler(10, 2, rank=0, world=2, seed=1), EpochSampler(10, 2, rank=1, world=2, seed=1)
    assert s0.batches_per_epoch() == 2  # 10 videos // global batch 4
    e0, e1 = s0.epoch_batches(0), s1.epoch_batches(0)
    items = [it for b in e0 + e1 for it in b]
    videos, keys = [v for v, _ in items], [k for _, k in items]
    assert len(set(videos)) == 8 and len(set(keys)) == 8  # disjoint across ranks, no repeats within an epoch
    assert s0.epoch_batches(1) != e0  # a new permutation each epoch
    it = iter(EpochSampler(10, 2, rank=0, world=2, seed=1, epoch=0, start=1))
    assert next(it) == e0[1] and next(it) == s0.epoch_batches(1)[0]
    # fewer videos than a global batch: the permutation repeats
    assert len(EpochSampler(3, 4).epoch_batches(0)[0]) == 4
