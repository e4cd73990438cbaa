"""The cross-domain augmentations (mocohd_cli/augment.py): cutout boxes, the
per-image warp, random affine transforms; and DiffAugment (train-image)."""

import math

import torch

from mocohd_cli.augment import affine_thetas, cutout, cutout_boxes, diff_augment, warp


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


def test_diff_augment_is_seeded_and_differentiable():
    x = torch.randn(4, 3, 16, 16, requires_grad=True)
    a = diff_augment(x, torch.Generator().manual_seed(1))
    b = diff_augment(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == x.shape and not torch.equal(a, x)
    # every image has a zeroed cut-out square, at least a quarter of it inside the image
    zeros = (a.detach() == 0).all(dim=1).sum(dim=(1, 2))
    assert bool((zeros >= 16).all())
    a.square().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
