"""The FID Inception-v3 (``detectors.inception``) and its reader (``formats.inception``)
against pytorch-fid 0.3.0 itself, with random weights in the official file's layout.

pytorch-fid's ``fid_inception_v3`` fetches ``pt_inception-2015-12-05-6726825d.pth``
through ``load_state_dict_from_url``; that is patched to return a seeded random
state dict of the same names and shapes (torchvision ``Inception3(num_classes=1008,
aux_logits=False)``, which the FID blocks keep the tensors of). Its batch norms get
random scales, shifts and running statistics, so folding them is really tested.
The same dict, ``torch.save``d, is what our reader converts.

Frames are few and small (24 at 64x64 and 24 at 40x72, both resized to 299 by
both networks): the architecture is the real one, so each frame costs the full
5.7 GFLOPs.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from .support import torchvision_cpu  # noqa: F401 - imported first: torchvision next to a CPU-only torch, before pytorch_fid

# isort: split
import pytorch_fid.fid_score as fid_score
import pytorch_fid.inception as fid_inception
import torchvision

from mocohd_cli.detectors import InceptionConfig, InceptionV3, detector_config
from mocohd_cli.errors import MocohdError
from mocohd_cli.formats import inception as reader
from mocohd_cli.metrics import FeatureStats, frechet_distance

from .support.nvidia_pickle import HostileReduce

N = 24  # frames per set; fewer than 2048, so both covariances are singular


def random_official_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict in the layout of pytorch-fid's weight file, random but well scaled:
    He-scaled convolutions, batch norms with scales in [0.5, 1.5], shifts and running
    means around 0 and running variances in [0.5, 2] (so the folding matters)."""
    template = torchvision.models.inception.Inception3(num_classes=1008, aux_logits=False, init_weights=False)
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, t in template.state_dict().items():
        if name.endswith("num_batches_tracked"):
            out[name] = t.clone()
        elif name.endswith("conv.weight"):
            out[name] = torch.randn(t.shape, generator=g) * (2.0 / t[0].numel()) ** 0.5
        elif name.endswith("bn.weight"):
            out[name] = torch.rand(t.shape, generator=g) + 0.5
        elif name.endswith("bn.running_var"):
            out[name] = torch.rand(t.shape, generator=g) * 1.5 + 0.5
        else:  # bn.bias, bn.running_mean, fc.*
            out[name] = torch.randn(t.shape, generator=g) * 0.1
    return out


@pytest.fixture(scope="module")
def official():
    return random_official_state_dict()


@pytest.fixture(scope="module")
def official_file(official, tmp_path_factory):
    path = tmp_path_factory.mktemp("inception") / "pt_inception-2015-12-05-random.pth"
    torch.save(official, path)
    return path


@pytest.fixture(scope="module")
def theirs(official):
    """pytorch-fid's InceptionV3 as its FID computation builds it, with the random weights."""
    mp = pytest.MonkeyPatch()
    mp.setattr(fid_inception, "load_state_dict_from_url", lambda url, progress=True: official)
    try:
        model = fid_inception.InceptionV3(
            [fid_inception.InceptionV3.BLOCK_INDEX_BY_DIM[2048]],
            resize_input=True,
            normalize_input=True,
            use_fid_inception=True,
        )
    finally:
        mp.undo()
    return model.eval()


@pytest.fixture(scope="module")
def ours(official_file):
    config, tensors, notes = reader.read(official_file)
    model = InceptionV3(InceptionConfig.from_dict(config)).eval()
    model.load_state_dict(tensors, strict=True)
    assert notes == {"layout": "Inception3", "bn_eps": 0.001, "has_fc": True}
    return model


def frames(seed: int, n: int, h: int, w: int, smooth: bool) -> torch.Tensor:
    """uint8 frames [n, 3, h, w]: noise, or noise blurred into blobs (a second distribution)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, h, w, generator=g)
    if smooth:
        x = torch.nn.functional.avg_pool2d(x, 5, stride=1, padding=2, count_include_pad=False)
        x = (x - x.mean()) * 4 + 0.6
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


@pytest.fixture(scope="module")
def features(theirs, ours):
    """(theirs, ours) features [2N, 2048] of a noise set (64x64) and a blob set (40x72)."""
    sets = [frames(1, N, 64, 64, smooth=False), frames(2, N, 40, 72, smooth=True)]
    with torch.inference_mode():
        a = torch.cat([theirs(s.float() / 255)[0].squeeze(-1).squeeze(-1) for s in sets])  # pytorch-fid: [0, 1]
        b = torch.cat([ours(s.float() / 127.5 - 1) for s in sets])  # ours: [-1, 1]
    return a, b


def test_features_match_pytorch_fid(features, theirs, ours):
    a, b = features
    assert a.shape == b.shape == (2 * N, 2048)
    scale = a.abs().max().item()
    assert 0.1 < scale < 100 and (a > 0).float().mean() > 0.5  # the random network is neither dead nor exploding
    # float32 rounding only (batch norm folded, fused 1x1 convolutions, resize before or after the
    # [-1, 1] map): measured 4e-7 of the largest feature
    assert (a - b).abs().max().item() <= 1e-5 * scale
    # at 299x299 pytorch-fid's resize is the identity and ours is skipped
    x = frames(3, 2, 299, 299, smooth=False).float()
    with torch.inference_mode():
        a299, b299 = theirs(x / 255)[0].flatten(1), ours(x / 127.5 - 1)
    assert (a299 - b299).abs().max().item() <= 1e-5 * a299.abs().max().item()


# pytorch-fid's sqrtm call: scipy's deprecated disp=False, and its warning about the singular product
@pytest.mark.filterwarnings("ignore:The `disp` argument is deprecated", "ignore:Matrix is singular")
def test_fid_matches_pytorch_fid(features):
    """pytorch-fid's statistics (``calculate_activation_statistics``: numpy mean and
    ``np.cov(rowvar=False)``) and ``calculate_frechet_distance`` (scipy ``sqrtm``) against
    ``FeatureStats.covariance(ddof=1)`` and our eigh-based ``frechet_distance``.

    With 24 frames in 2048 dimensions both covariances have rank 23: sqrtm of their
    singular product is ill-conditioned (pytorch-fid adds 1e-6 to the diagonals when its
    result is not finite, and drops imaginary parts), while ours is exact by construction;
    the two agree to 9e-7 relative here (7e-8 on the same statistics), asserted at 1e-3.
    """
    a, b = features
    fa = a.double().numpy()
    mu1, s1 = np.mean(fa[:N], axis=0), np.cov(fa[:N], rowvar=False)
    mu2, s2 = np.mean(fa[N:], axis=0), np.cov(fa[N:], rowvar=False)
    expected = fid_score.calculate_frechet_distance(mu1, s1, mu2, s2)
    real, fake = FeatureStats(), FeatureStats()
    real.update(b[:N])
    fake.update(b[N:])
    got = frechet_distance(real.mean, real.covariance(ddof=1), fake.mean, fake.covariance(ddof=1))
    assert expected > 0
    assert abs(got - expected) <= 1e-3 * expected, (got, expected)


def test_wrapper_state_dict_converts_the_same(theirs, official):
    _, direct, _ = reader.convert(official)
    _, wrapped, notes = reader.convert(theirs.state_dict())
    assert notes["layout"] == "pytorch-fid InceptionV3" and not notes["has_fc"]
    assert direct.keys() == wrapped.keys()
    assert all(torch.equal(direct[k], wrapped[k]) for k in direct)


def test_state_shapes_match_the_module_and_pytorch_fid(official):
    config = InceptionConfig()
    module_shapes = {k: tuple(v.shape) for k, v in InceptionV3(config).state_dict().items()}
    assert config.state_shapes() == module_shapes
    assert len(module_shapes) == 2 * 94
    for name, shape in module_shapes.items():
        theirs_name = name.replace(".weight", ".conv.weight").replace(".bias", ".bn.bias")
        assert tuple(official[theirs_name].shape) == shape, name


def test_config_round_trip_and_validation():
    assert InceptionConfig.from_dict({"size": 299}).to_dict() == {"size": 299, "feature_dim": 2048}
    for bad, what in (
        ({"size": True}, "size"),
        ({"size": 32}, "size"),
        ({"feature_dim": 1000}, "feature_dim"),
        ({"width": 2}, "unknown"),
    ):
        with pytest.raises((TypeError, ValueError), match=what):
            InceptionConfig.from_dict(bad)
    with pytest.raises(MocohdError, match="invalid inception config: size"):
        detector_config("inception", {"size": "299"})


def test_forward_checks_its_input(ours):
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        ours(torch.zeros(1, 1, 8, 8))
    with pytest.raises(TypeError, match="float"):
        ours(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


def one_line(e) -> str:
    text = str(e.value)
    assert "\n" not in text
    return text


def test_missing_misshaped_and_non_finite_tensors_are_named(official, tmp_path):
    missing = dict(official)
    del missing["Mixed_6c.branch7x7dbl_3.bn.running_var"]
    with pytest.raises(MocohdError) as e:
        reader.convert(missing)
    assert one_line(e) == ("missing tensor Mixed_6c.branch7x7dbl_3.bn.running_var (the FID Inception-v3 needs it)")

    misshaped = {**official, "Mixed_7b.branch3x3_2a.conv.weight": torch.zeros(384, 384, 3, 1)}
    path = tmp_path / "misshaped.pth"
    torch.save(misshaped, path)
    with pytest.raises(MocohdError) as e:
        reader.read(path)
    assert (
        one_line(e)
        == f"{path}: Mixed_7b.branch3x3_2a.conv.weight is [384, 384, 3, 1], the FID Inception-v3 needs [384, 384, 1, 3]"
    )

    nan = {**official, "Mixed_5d.branch_pool.bn.weight": official["Mixed_5d.branch_pool.bn.weight"].clone()}
    nan["Mixed_5d.branch_pool.bn.weight"][3] = float("nan")
    with pytest.raises(MocohdError, match=r"^tensor Mixed_5d\.branch_pool\.bn\.weight holds NaN") as e:
        reader.convert(nan)
    one_line(e)

    extra = {**official, "Mixed_5b.branch9x9.conv.weight": torch.zeros(1)}
    with pytest.raises(MocohdError, match=r"unexpected tensor Mixed_5b\.branch9x9\.conv\.weight"):
        reader.convert(extra)

    imagenet = {**official, "fc.weight": torch.zeros(1000, 2048), "fc.bias": torch.zeros(1000)}
    with pytest.raises(MocohdError, match="1000 classes"):
        reader.convert(imagenet)

    wrapped = {"blocks.2.1." + k.removeprefix("Mixed_5c."): v for k, v in official.items() if k.startswith("Mixed_5c.")}
    with pytest.raises(MocohdError, match=r"^missing tensor blocks\.0\.0\.conv\.weight "):
        reader.convert(wrapped)


@pytest.mark.parametrize("content", [[1, 2], {"a.weight": torch.zeros(2)}, {"Conv2d_1a_3x3.conv.weight": 3}])
def test_files_that_are_not_inception_state_dicts(tmp_path, content):
    path = tmp_path / "other.pth"
    torch.save(content, path)
    with pytest.raises(
        MocohdError,
        match=rf"^{re.escape(str(path))}: (not a pytorch-fid Inception state dict|"
        r"missing tensor|Conv2d_1a_3x3\.conv\.weight is not)",
    ) as e:
        reader.read(path)
    one_line(e)


def test_a_file_holding_code_is_refused_unexecuted(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"Conv2d_1a_3x3.conv.weight": HostileReduce(marker)}, path)
    with pytest.raises(MocohdError, match=r"refused.*nothing in it was executed") as e:
        reader.read(path)
    one_line(e)
    assert not marker.exists()


def test_the_shadow_note_of_the_inception_says_where_it_comes_from():
    """The registry's Inception is downloaded by hand, from GitHub: no '(Hub None)'."""
    from mocohd_cli import store

    note = store.shadow_note("inception", "inception")
    assert "Hub None" not in note and "(from https://github.com/mseitzer/pytorch-fid/" in note
    assert "(Hub flateon/FVD-I3D-torchscript)" in store.shadow_note("i3d", "i3d")
