"""BigGAN-deep: the port's state-dict layout, spectral-norm baking, truncation rows,
the truncated-normal mapping, and the generator against a plain restatement of the port."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

from mocohd_cli.errors import MocohdError
from mocohd_cli.formats import biggan as fmt, read_any
from mocohd_cli.generators import build_generator, synthesis_kwargs
from mocohd_cli.generators.biggan import BigGANConfig, ConditionalBatchNorm, TruncatedNormal, deep_layers, stat_rows
from mocohd_cli.loaders import load_image_generator, store_model

from .conftest import mocohd, run, store_files
from .support.biggan_reference import TINY, make_reference


def save_port_files(folder, ref, config=TINY, with_config=True):
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(ref.state_dict(), folder / "pytorch_model.bin")
    if with_config:
        (folder / "config.json").write_text(json.dumps(config))
    return folder / "pytorch_model.bin"


@pytest.fixture(scope="module")
def ref():
    return make_reference()


def inputs(n=3, seed=1, num_classes=1000):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 8, generator=g).clamp(-2, 2)
    c = F.one_hot(torch.tensor([207, 3, 999][:n]), num_classes).float()
    c[-1] = 0.25 * c[-1] + 0.75 * F.one_hot(torch.tensor(12), num_classes).float()  # a class mix
    return z, c


def test_deep_layers_is_the_papers_128_plan():
    plan = deep_layers(128)
    assert plan == [
        [False, 16, 16],
        [True, 16, 16],
        [False, 16, 16],
        [True, 16, 8],
        [False, 8, 8],
        [True, 8, 4],
        [False, 4, 4],
        [True, 4, 2],
        [False, 2, 2],
        [True, 2, 1],
    ]
    cfg = BigGANConfig()
    assert cfg.resolution == 128 and cfg.attention_channels == 2 * 128  # attention at 64 px, 256 channels


def test_config_is_validated():
    with pytest.raises(ValueError, match="px"):
        BigGANConfig(resolution=256)
    with pytest.raises(ValueError, match="takes"):
        BigGANConfig(resolution=16, layers=[[True, 4, 2], [True, 4, 1]], channel_width=8, attention=0)
    with pytest.raises(ValueError, match="unknown BigGANConfig keys"):
        BigGANConfig.from_dict({"resolution": 128, "colour": 1})


@pytest.mark.parametrize("t", [1.0, 0.4, 0.5, 0.02, 0.37, 0.999])
def test_truncation_selects_and_interpolates_rows_like_the_port(t):
    n = 51
    i, j, a = stat_rows(t, n)
    frac, whole = math.modf(t / (1.0 / (n - 1)))
    if frac == 0:
        assert (i, j, a) == (int(whole), int(whole), 1.0)
    else:  # the port: frac * row_whole + (1 - frac) * row_(whole+1)
        assert (i, j) == (int(whole), int(whole) + 1) and a == frac
    bn = ConditionalBatchNorm(2, 0, n, 1e-4)
    bn.running_mean.copy_(torch.arange(n, dtype=torch.float32)[:, None].expand(n, 2))
    mean, _ = bn.stats((i, j, a))
    expected = whole if frac == 0 else frac * whole + (1 - frac) * (whole + 1)
    assert torch.allclose(mean, torch.full((2,), float(expected)), atol=1e-5)


def test_truncation_on_a_grid_point_uses_that_row_alone():
    assert stat_rows(1.0, 51) == (50, 50, 1.0)
    assert stat_rows(0.5, 51) == (25, 25, 1.0)
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError):
            stat_rows(bad, 51)


def test_spectral_norm_baking_equals_the_modules_weight(ref):
    sd = ref.state_dict()
    modules = dict(ref.named_modules())
    checked = 0
    for key in sd:
        if key.endswith(".weight_orig"):
            prefix = key[: -len(".weight_orig")]
            baked = fmt.bake(sd, prefix)
            assert torch.allclose(baked, modules[prefix].weight, rtol=1e-5, atol=1e-7), prefix
            assert not torch.allclose(baked, sd[key])  # sigma is not 1: baking did something
            checked += 1
    assert checked == 1 + 6 * 4 * 3 + 4 + 1  # gen_z, 6 blocks x 4 x (conv, scale, offset), attention, to_rgb


def test_state_dict_layout_round_trip(tmp_path, ref):
    path = save_port_files(tmp_path / "port", ref)
    model = read_any(path)
    assert model.family == "biggan-deep" and model.source["format"] == "biggan-pytorch"
    cfg = BigGANConfig.from_dict(model.config)
    assert cfg.resolution == 32 and cfg.attention == 4 and cfg.layers == [[u, i, o] for u, i, o in TINY["layers"]]
    G = build_generator("biggan-deep", model.config)
    assert set(G.state_dict()) == set(model.tensors)  # every tensor used, none missing
    # through the store and back: the canonical file holds the same tensors
    store_model(model, "tiny-biggan", str(path))
    G2 = load_image_generator("tiny-biggan")
    for k, v in G2.state_dict().items():
        assert torch.equal(v, model.tensors[k]), k


@pytest.mark.parametrize("t", [1.0, 0.4, 0.37])
def test_generator_matches_the_port(tmp_path, ref, t):
    G = load_image_generator(save_port_files(tmp_path / "port", ref))
    z, c = inputs()
    with torch.no_grad():
        expected = ref(z * t, c, t)
        ours = G.synthesis(z * t, c, truncation=t)
    assert ours.shape == (3, 3, 32, 32)
    assert torch.allclose(ours, expected, atol=2e-5), (ours - expected).abs().max()
    assert ours.std() > 0.05  # not a constant image


def test_config_inferred_without_config_json(tmp_path, ref):
    with_cfg = read_any(save_port_files(tmp_path / "a", ref))
    without = read_any(save_port_files(tmp_path / "b", ref, with_config=False))
    assert with_cfg.config == without.config and not without.source["config_json"]


def test_config_json_that_disagrees_is_refused(tmp_path, ref):
    bad = dict(TINY, output_dim=64)
    with pytest.raises(MocohdError, match="output_dim"):
        read_any(save_port_files(tmp_path / "p", ref, config=bad))
    bad = dict(TINY, layers=[[True, 16, 16]] * 6)
    with pytest.raises(MocohdError, match="layers do not match"):
        read_any(save_port_files(tmp_path / "q", ref, config=bad))


def test_missing_or_extra_tensors_are_one_line_errors(tmp_path, ref):
    sd = ref.state_dict()
    broken = {k: v for k, v in sd.items() if not k.startswith("generator.layers.2.bn_1.offset")}
    torch.save(broken, tmp_path / "pytorch_model.bin")
    with pytest.raises(MocohdError, match="bn_1.offset"):
        read_any(tmp_path / "pytorch_model.bin")
    torch.save({**sd, "generator.extra": torch.zeros(1)}, tmp_path / "pytorch_model.bin")
    with pytest.raises(MocohdError, match="unexpected tensors"):
        read_any(tmp_path / "pytorch_model.bin")


def test_truncated_normal_mapping():
    m = TruncatedNormal(4)
    z = torch.randn(200_000, 4, generator=torch.Generator().manual_seed(0))
    w = m(z)
    assert w.abs().max() <= 2.0 and torch.all(
        torch.diff(m(torch.linspace(-6, 6, 101)[:, None].expand(-1, 4))[:, 0]) >= 0
    )
    # N(0, 1) truncated to [-2, 2]: mean 0, variance 1 - 2 * 2 * pdf(2) / (cdf(2) - cdf(-2))
    pdf2 = math.exp(-2) / math.sqrt(2 * math.pi)
    var = 1 - 4 * pdf2 / math.erf(2 / math.sqrt(2))
    assert abs(float(w.mean())) < 0.01 and abs(float(w.var()) - var) < 0.01
    assert torch.allclose(m(z[:5], truncation_psi=0.5), 0.5 * w[:5])
    assert torch.equal(m.w_avg, torch.zeros(4))


def test_synthesis_kwargs_and_errors(ref, tmp_path):
    G = load_image_generator(save_port_files(tmp_path / "p", ref))
    assert G.c_dim == 1000 and G.w_dim == 8 and G.synthesis.make_noise(3) == []
    with pytest.raises(MocohdError, match="class-conditional"):
        synthesis_kwargs(G)
    z, c = inputs()
    assert synthesis_kwargs(G, c, 0.5) == {"c": c, "truncation": 0.5}
    with pytest.raises(ValueError, match="class vector shape"):
        G.synthesis(z, c[:, :10])
    with torch.no_grad():
        full = G(torch.randn(3, 8), c, truncation=0.5)
    assert full.shape == (3, 3, 32, 32)


def test_bf16_synthesis_is_close(ref, tmp_path):
    G = load_image_generator(save_port_files(tmp_path / "p", ref))
    z, c = inputs()
    with torch.no_grad():
        a = G.synthesis(z, c)
        b = G.synthesis(z, c, dtype=torch.bfloat16)
    assert b.dtype == torch.float32 and (a - b).abs().max() < 0.1


# ----------------------------------------------------------------------------
# End to end: fetch from the (imitation) Hub, train motion, render with a class.


def test_fetch_train_render_end_to_end(tmp_path, ref):
    import imageio.v3 as iio

    from mocohd_cli.data.procedural import write_dataset

    from .support.hub_server import FakeHub

    folder = save_port_files(tmp_path / "port", ref).parent
    with FakeHub() as hub:
        hub.add_file("osanseviero/BigGAN-deep-128", "pytorch_model.bin", (folder / "pytorch_model.bin").read_bytes())
        hub.add_file("osanseviero/BigGAN-deep-128", "config.json", (folder / "config.json").read_bytes())
        code, out, err = mocohd(tmp_path, hub.url, "fetch", "biggan-deep-128")
        assert code == 0, err
        assert store_files(tmp_path / "home") == ["image/biggan-deep-128.safetensors"]
        assert any(path.endswith("/config.json") for _, path, _ in hub.requests)
        code, out, err = mocohd(tmp_path, hub.url, "info", "biggan-deep-128")
        assert code == 0 and "biggan-deep" in out and "osanseviero/BigGAN-deep-128" in out.replace("\n", "")

        data = write_dataset(tmp_path / "heads", videos=2, frames=8, size=16, seed=0)
        code, out, err = mocohd(
            tmp_path,
            hub.url,
            "train",
            "--image",
            "biggan-deep-128",
            "--class",
            "207",
            "--data",
            str(data),
            "--name",
            "dogs",
            "--steps",
            "2",
            "--batch",
            "2",
            "--frames",
            "3",
            "--time-step",
            "1",
            "--frame-size",
            "16",
            "--h-dim",
            "8",
            "--dv-channels",
            "4",
            "--di-channels",
            "4",
            "--queue",
            "4",
            "--pca-samples",
            "500",
            "--workers",
            "0",
            "--truncation",
            "0.5",
            timeout=300,
        )
        assert code == 0, err
        files = store_files(tmp_path / "home")
        assert "image/biggan-deep-128.safetensors" in files and "motion/dogs.safetensors" in files

        out_a = tmp_path / "a"
        code, out, err = mocohd(
            tmp_path,
            hub.url,
            "render",
            str(out_a),
            "--format",
            "png",
            "--image",
            "biggan-deep-128",
            "--motion",
            "dogs",
            "--class",
            "golden_retriever",
            "-n",
            "4",
            "--truncation",
            "0.5",
        )
        assert code == 0, err
        assert "207 golden retriever" in err
        a = [iio.imread(p) for p in sorted(out_a.rglob("*.png"))]
        assert len(a) == 4 and a[0].shape == (32, 32, 3) and not all((f == a[0]).all() for f in a[1:])  # it moves
        # by number: the same frames; the motion's training class is the default
        for args in (["--class", "207"], []):
            out_b = tmp_path / f"b{len(args)}"
            code, out, err = mocohd(
                tmp_path,
                hub.url,
                "render",
                str(out_b),
                "--format",
                "png",
                "--image",
                "biggan-deep-128",
                "--motion",
                "dogs",
                "-n",
                "4",
                "--truncation",
                "0.5",
                *args,
            )
            assert code == 0 and "207 golden retriever" in err, err
            assert all((iio.imread(p) == f).all() for p, f in zip(sorted(out_b.rglob("*.png")), a, strict=True))
        # class interpolation: the first frame is class 207's, the last differs from it
        out_c = tmp_path / "c"
        code, out, err = mocohd(
            tmp_path,
            hub.url,
            "render",
            str(out_c),
            "--format",
            "png",
            "--image",
            "biggan-deep-128",
            "--motion",
            "dogs",
            "--class",
            "207",
            "--class-to",
            "tench",
            "-n",
            "4",
            "--truncation",
            "0.5",
        )
        assert code == 0 and "-> 0 tench" in err, err
        c = [iio.imread(p) for p in sorted(out_c.rglob("*.png"))]
        assert (c[0] == a[0]).all() and not (c[-1] == a[-1]).all()

        for args, message in (
            (["--class", "golden_retreiver"], "did you mean 'golden_retriever'"),
            (["--class", "1000"], "out of range"),
            (["--truncation", "1.5"], "must be in (0, 1]"),
        ):
            code, out, err = mocohd(
                tmp_path,
                hub.url,
                "render",
                str(tmp_path / "x.mp4"),
                "--image",
                "biggan-deep-128",
                "--motion",
                "dogs",
                *args,
            )
            usage = "must be in" in message  # a truncation BigGAN can never take: exit 2
            assert code == (2 if usage else 1) and message in err and "Traceback" not in err, err
        code, out, err = mocohd(tmp_path, hub.url, "render", str(tmp_path / "y.mp4"), "--class", "207")
        assert code == 1 and "unconditional" in err


def test_pca_of_the_latent_space_is_isotropic(tmp_path, ref):
    from mocohd_cli.loaders.pca_bases import pca_for

    G = load_image_generator(save_port_files(tmp_path / "p", ref))
    G.identity = {"name": "tiny-biggan", "weights_sha256": "0" * 64}
    basis, path, computed = pca_for("tiny-biggan", G=G, samples=40_000)
    var = 1 - 4 * (math.exp(-2) / math.sqrt(2 * math.pi)) / math.erf(2 / math.sqrt(2))  # truncated N(0, 1)
    assert computed and path.is_file() and basis.components.shape == (8, 8)
    assert torch.allclose(basis.stdev, torch.full((8,), math.sqrt(var)), atol=0.02)


def test_legacy_torch_file_is_read(tmp_path, ref):
    """The 2019 port wrote .bin files with torch.save's legacy (non-zip) serialisation."""
    folder = tmp_path / "legacy"
    folder.mkdir()
    torch.save(ref.state_dict(), folder / "pytorch_model.bin", _use_new_zipfile_serialization=False)
    assert (folder / "pytorch_model.bin").read_bytes()[:2] == b"\x80\x02"
    model = read_any(folder / "pytorch_model.bin")
    zipped = read_any(save_port_files(tmp_path / "zip", ref, with_config=False))
    assert model.family == "biggan-deep" and all(torch.equal(model.tensors[k], v) for k, v in zipped.tensors.items())


def test_the_demo_motion_drives_biggan_cross_domain(tmp_path, capsys):
    """`mocohd render --image biggan-deep-128 --class 207 out.mp4` with the shipped 128-d demo motion."""
    import imageio.v3 as iio

    cfg = dict(TINY, z_dim=128, class_embed_dim=128)
    path = save_port_files(tmp_path / "p", make_reference(cfg, seed=3), config=cfg)
    code, out, err = run(capsys, "import", str(path), "--name", "biggan-deep-128")
    assert code == 0, err
    code, out, err = run(
        capsys,
        "render",
        str(tmp_path / "out.mp4"),
        "--image",
        "biggan-deep-128",
        "--class",
        "207",
        "-n",
        "6",
        "--truncation",
        "0.5",
    )
    assert code == 0, err
    assert "cross-domain" in err and "207 golden retriever" in err
    frames = iio.imread(tmp_path / "out.mp4")
    assert frames.shape == (6, 32, 32, 3) and frames.std() > 1


def test_sample_images_example_with_a_class(tmp_path, ref):
    import subprocess
    import sys
    from pathlib import Path

    import imageio.v3 as iio

    path = save_port_files(tmp_path / "p", ref)
    script = Path(__file__).resolve().parents[1] / "examples" / "sample_images.py"
    p = subprocess.run(
        [
            sys.executable,
            str(script),
            str(tmp_path / "s.png"),
            "--image",
            str(path),
            "--class",
            "golden_retriever",
            "-n",
            "2",
            "--device",
            "cpu",
            "--truncation",
            "0.5",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    img = iio.imread(tmp_path / "s.png")
    assert img.shape == (32, 64, 3)
    G = load_image_generator(path)
    z = torch.randn(2, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = G.synthesis(
            G.mapping(z, truncation_psi=0.5), F.one_hot(torch.tensor([207, 207]), 1000).float(), truncation=0.5
        )
    expected = ((torch.cat(list(expected), dim=2).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0)
    assert (torch.from_numpy(img).int() - expected.int()).abs().max() <= 1
