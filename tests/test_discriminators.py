"""The discriminators (mocohd_cli/discriminators/): the multi-scale PatchGAN
video and image discriminators of the in-domain setting, the SN-ResNet image
discriminator of the cross-domain setting, and its contrastive head (InfoNCE,
momentum copy, queue), and StyleGAN2's residual discriminator (train-image)."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mocohd_cli.discriminators import (
    ContrastiveDiscriminator,
    MultiscaleImageDiscriminator,
    MultiscaleVideoDiscriminator,
    SNResNetDiscriminator,
    info_nce,
)
from mocohd_cli.discriminators.snresnet import channel_multipliers
from mocohd_cli.discriminators.stylegan2 import StyleGAN2Discriminator

# ---------------------------------------------------------------- PatchGAN (in-domain)


def test_video_discriminator_shapes_and_scales():
    torch.manual_seed(0)
    D = MultiscaleVideoDiscriminator(in_channels=3, n_frames=16)
    x = torch.randn(2, 3, 16, 32, 32)
    feats = D(x)
    assert len(feats) == 2 and all(len(f) == 5 for f in feats)
    assert [f.shape[1] for f in feats[0]] == [64, 128, 256, 512, 1]
    # kernel 4, padding 2: stride-2 layers give T: 16 -> 9 -> 5 -> 3, then stride 1: 4 -> 5
    assert feats[0][-1].shape == (2, 1, 5, 7, 7)
    # the second scale sees the clip pooled in space only (16 frames): T stays 16 -> same time extent
    assert feats[1][-1].shape[2] == 5 and feats[1][-1].shape[3] < 7
    long = MultiscaleVideoDiscriminator(in_channels=3, n_frames=32)(torch.randn(1, 3, 32, 32, 32))
    assert long[1][-1].shape[2] < long[0][-1].shape[2]  # long clips are pooled in time too
    convs = [m for m in D.modules() if isinstance(m, nn.Conv3d)]
    assert len(convs) == 10 and all(abs(float(c.weight.detach().std()) - 0.02) < 0.004 for c in convs[:-1])
    norms = [m for m in D.modules() if isinstance(m, nn.InstanceNorm3d)]
    assert norms and all(n.track_running_stats and not n.affine for n in norms)


@pytest.mark.parametrize("num_scales", [1, 2, 3])
def test_shortest_clip_is_what_the_video_discriminator_takes(num_scales):
    """shortest_clip reads the layers (``takes``); training forwards agree: the shortest clip goes
    through (with a gradient), one frame less does not (the official 2 scales: 3 frames)."""
    from mocohd_cli.discriminators import shortest_clip

    torch.manual_seed(0)
    shortest = shortest_clip(num_scales=num_scales)
    assert shortest == (1 if num_scales == 1 else 3)
    for frames in (shortest, shortest + 1, 17):
        D = MultiscaleVideoDiscriminator(3, frames, base_channels=4, num_scales=num_scales)
        assert D.takes(frames)
        sum(f[-1].mean() for f in D(torch.randn(2, 3, frames, 16, 16))).backward()
    if shortest > 1:
        D = MultiscaleVideoDiscriminator(3, shortest - 1, base_channels=4, num_scales=num_scales)
        assert not D.takes(shortest - 1)
        with pytest.raises(RuntimeError):
            D(torch.randn(2, 3, shortest - 1, 16, 16))


def test_in_domain_video_input_is_channel_pairs():
    D = MultiscaleVideoDiscriminator(in_channels=6, n_frames=15)
    assert D(torch.randn(1, 6, 15, 32, 32))[0][-1].shape[1] == 1


def test_in_domain_image_discriminator():
    D = MultiscaleImageDiscriminator(in_channels=6)
    feats = D(torch.randn(3, 6, 64, 64))
    assert len(feats) == 2 and [f.shape[1] for f in feats[0]] == [64, 128, 256, 512, 1]
    # 64 -> 33 -> 17 -> 9 (stride 2, padding 2) -> 10 -> 11 (stride 1); the pooled scale: 32 -> ... -> 7
    assert feats[0][-1].shape == (3, 1, 11, 11) and feats[1][-1].shape == (3, 1, 7, 7)
    norms = [m for m in D.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert norms and all(n.track_running_stats and not n.affine for n in norms)


# ---------------------------------------------------------------- SN-ResNet and the contrastive head (cross-domain)


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


def test_contrastive_momentum_copy_and_queue():
    torch.manual_seed(0)
    D = SNResNetDiscriminator(16, channels=2, proj_dim=4)
    C = ContrastiveDiscriminator(D, proj_dim=4, queue=10, momentum=0.9, world_batch=4)
    assert C.length == 8  # whole global batches
    before = [p.detach().clone() for p in C.ema.parameters()]
    with torch.no_grad():
        for p in C.D.parameters():
            p.add_(1.0)
    C.update_ema()
    for b, p, q in zip(before, C.D.parameters(), C.ema.parameters(), strict=True):
        torch.testing.assert_close(q, 0.9 * b + 0.1 * p.detach())
        assert not q.requires_grad
    for i in range(3):
        C.enqueue(torch.full((4, 4), float(i)), torch.full((4, 4), -float(i)))
    assert int(C.queue_ptr) == 4  # 0 -> 4 -> 0 (wrapped at 8) -> 4
    assert torch.equal(C.queue_first[:4], torch.full((4, 4), 2.0)) and torch.equal(
        C.queue_first[4:8], torch.full((4, 4), 1.0)
    )
    assert torch.equal(C.queue_later[:4], torch.full((4, 4), -2.0))
    loss = C.loss(*torch.randn(4, 2, 4).unbind(0))
    assert loss.ndim == 0 and torch.isfinite(loss)


# ---------------------------------------------------------------- StyleGAN2 (train-image)


def test_discriminator_shapes_and_minibatch_std():
    torch.manual_seed(0)
    D = StyleGAN2Discriminator(32, channel_base=512, channel_max=32)
    assert D(torch.randn(6, 3, 32, 32)).shape == (6,)
    x = torch.randn(8, 4, 4, 4)
    y = D.minibatch_std(x)
    assert y.shape == (8, 5, 4, 4) and torch.equal(y[:, :4], x)
    # sample i belongs to group i % 2 (groups of 4 among 8): its extra channel is that group's mean std
    group = x[[0, 2, 4, 6]]
    expected = (group.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
    torch.testing.assert_close(y[0, 4, 0, 0], expected)
