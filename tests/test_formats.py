"""Weight import: every format round-trips to safetensors with identical outputs;
hostile, truncated and foreign files are refused cleanly."""

import io
import os
import pickle
import re

import pytest
import torch

from mocohd_cli import MocohdError, import_model, load_image_generator
from mocohd_cli.formats import canonical, read_any, rosinality, sniff
from mocohd_cli.generators import StyleGAN2Generator

from .conftest import randomized_generator, run, save_canonical, save_rosinality, store_files, tiny_config
from .support.nvidia_pickle import HostileReduce, _persist, nvidia_modules, write_nvidia_pickle


def _images(G, seed=0, batch=2):
    z = torch.randn(batch, G.z_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return G.synthesis(G.mapping(z, truncation_psi=0.8), noise_mode="const")


# ---------------------------------------------------------------- rosinality


def test_rosinality_round_trip(tmp_path):
    G = randomized_generator(tiny_config(16, channel_max=16, channel_base=128))
    pt = tmp_path / "g.pt"
    save_rosinality(G, pt)
    assert sniff(pt) == "torch"
    h = import_model(pt, "rosi")
    assert h.kind == "image" and h.family == "stylegan2" and h.source["format"] == "rosinality"
    assert h.config["channel_base"] == 128 and h.config["channel_max"] == 16
    G2 = load_image_generator("rosi")
    assert torch.equal(_images(G), _images(G2))
    # ... and back: canonical -> rosinality state dict reproduces the original tensors.
    back = rosinality.to_rosinality_state_dict(h.config, canonical.load_tensors(h.path))
    orig = torch.load(pt, weights_only=True)
    assert back["g_ema"].keys() == orig["g_ema"].keys()
    assert all(torch.equal(back["g_ema"][k], orig["g_ema"][k]) for k in orig["g_ema"])


def test_rosinality_without_latent_avg_estimates_it(tmp_path):
    G = randomized_generator(tiny_config(8))
    ckpt = rosinality.to_rosinality_state_dict(G.cfg.to_dict(), G.state_dict())
    del ckpt["latent_avg"]
    torch.save(ckpt, tmp_path / "g.pt")
    m = read_any(tmp_path / "g.pt")
    assert "w_avg" in m.source
    with torch.no_grad():
        mean = G.mapping(torch.randn(20000, G.z_dim)).mean(0)
    assert (m.tensors["mapping.w_avg"] - mean).abs().max() < 0.1


def test_pt_with_code_is_refused_by_weights_only(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"g_ema": HostileReduce(marker)}, path)
    with pytest.raises(MocohdError, match="refused"):
        import_model(path, "evil")
    assert not marker.exists()


# ---------------------------------------------------------------- NVIDIA pickles


@pytest.mark.parametrize("resolution,clamp", [(8, None), (32, 256.0)])
def test_nvidia_pickle_round_trip(tmp_path, isolated_store, resolution, clamp):
    G = randomized_generator(tiny_config(resolution, conv_clamp=clamp), seed=resolution)
    marker = tmp_path / "module_src_ran"
    pkl = tmp_path / "network-snapshot.pkl"
    write_nvidia_pickle(pkl, G, marker=str(marker))
    h = import_model(pkl, "nv")
    assert not marker.exists(), "module_src was executed"
    assert h.source["format"] == "nvidia-pickle" and h.config["conv_clamp"] == clamp
    G2 = load_image_generator("nv")
    assert torch.equal(_images(G), _images(G2))
    # Loading the pickle directly (converted in memory) gives the same generator.
    assert torch.equal(_images(load_image_generator(pkl)), _images(G))
    # Re-importing the canonical file is a fixed point.
    h2 = import_model(h.path, "nv2")
    assert h2.weights_sha256 == h.weights_sha256


def test_hostile_pickle_is_refused_and_nothing_runs(tmp_path, isolated_store):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    with open(path, "wb") as f:
        pickle.dump({"G_ema": HostileReduce(marker)}, f)
    with pytest.raises(MocohdError, match=r"refused.*(posix|os)\.system.*allow-list"):
        import_model(path, "evil")
    assert not marker.exists()
    assert store_files(isolated_store) == []


def test_pickle_with_exec_global_is_refused(tmp_path):
    class Exec:
        def __reduce__(self):
            return (exec, ("open('x','w')",))

    path = tmp_path / "exec.pkl"
    path.write_bytes(pickle.dumps({"G_ema": Exec()}))
    with pytest.raises(MocohdError, match="builtins.exec"):
        read_any(path)


def test_hostile_storage_payload_is_refused(tmp_path):
    # A pickle whose tensor storage bytes hide a code-running torch.save payload.
    marker = tmp_path / "pwned"
    buf = io.BytesIO()
    torch.save(HostileReduce(marker), buf, _use_new_zipfile_serialization=False)

    class Storage:
        def __reduce__(self):
            return (torch.storage._load_from_bytes, (buf.getvalue(),))

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": Storage()}))
    with pytest.raises(MocohdError, match="refused|not a readable"):
        read_any(path)
    assert not marker.exists()


def test_stylegan3_pickle_is_recognised(tmp_path):
    # A StyleGAN2 generator dressed with a StyleGAN3 input layer takes the StyleGAN3 path and is refused.
    path = tmp_path / "sg3.pkl"
    write_nvidia_pickle(path, randomized_generator(tiny_config(8)), stylegan3=True)
    with pytest.raises(MocohdError, match="unknown architecture"):
        read_any(path)


def test_non_skip_architecture_is_refused(tmp_path):
    path = tmp_path / "orig.pkl"
    write_nvidia_pickle(path, randomized_generator(tiny_config(8)))
    # Same length, so the pickle stays well-formed: architecture='skip' -> 'orig'.
    path.write_bytes(path.read_bytes().replace(b"skip", b"orig"))
    with pytest.raises(MocohdError, match="only the 'skip' generator"):
        read_any(path)


# ---------------------------------------------------------------- damaged and foreign files


@pytest.fixture
def good_files(tmp_path):
    G = randomized_generator(tiny_config(8))
    files = {"pt": tmp_path / "g.pt", "pkl": tmp_path / "g.pkl", "safetensors": tmp_path / "g.safetensors"}
    save_rosinality(G, files["pt"])
    write_nvidia_pickle(files["pkl"], G)
    save_canonical(files["safetensors"], G)
    return files


@pytest.mark.parametrize("fmt", ["pt", "pkl", "safetensors"])
@pytest.mark.parametrize("keep", [0.5, 0.9, 0.999])
def test_truncated_files_are_refused_cleanly(good_files, tmp_path, isolated_store, fmt, keep):
    data = good_files[fmt].read_bytes()
    bad = tmp_path / f"bad.{fmt}"
    bad.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(MocohdError, match=r"corrupt or truncated"):
        import_model(bad, "bad")
    assert store_files(isolated_store) == []


def test_foreign_files_are_refused(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(os.urandom(1000))
    with pytest.raises(MocohdError, match="unrecognised file format"):
        read_any(junk)
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(MocohdError, match="empty"):
        read_any(tmp_path / "empty.pt")
    torch.save({"model": {"w": torch.zeros(2)}}, tmp_path / "other.pt")
    with pytest.raises(MocohdError, match="unknown architecture"):
        read_any(tmp_path / "other.pt")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, tmp_path / "plain.safetensors")
    with pytest.raises(MocohdError, match="without mocohd metadata"):
        read_any(tmp_path / "plain.safetensors")


def test_weights_that_do_not_fit_the_config_are_refused(tmp_path):
    G = randomized_generator(tiny_config(8))
    sd = G.state_dict()
    sd["synthesis.b8.conv1.weight"] = sd["synthesis.b8.conv1.weight"][:, :5]
    path = tmp_path / "mismatch.safetensors"
    save_canonical(path, G, sd=sd)
    with pytest.raises(MocohdError, match="do not match"):
        load_image_generator(path)


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch, good_files, isolated_store):
    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(canonical.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        import_model(good_files["pt"], "half")
    assert [f for f in store_files(isolated_store)] == []


def test_canonical_metadata(good_files):
    h = canonical.read_header(good_files["safetensors"])
    assert h.format == canonical.FORMAT_VERSION and h.kind == "image"
    G = StyleGAN2Generator(tiny_config(8))
    assert set(h.shapes) == set(G.state_dict())
    assert h.weights_sha256 == canonical.weights_sha256(canonical.load_tensors(h.path))


# ---------------------------------------------------------------- files that lie


def _canonical(path, G, config=None, sd=None, **meta):
    """A canonical file of ``G``; ``meta`` overrides metadata (None drops a key)."""
    from safetensors.torch import save_file

    header = save_canonical(path, G, sd=sd, config=config)
    metadata = {**header.metadata, **{f"mocohd.{k}": v for k, v in meta.items()}}
    save_file(canonical.load_tensors(path), path, metadata={k: v for k, v in metadata.items() if v is not None})
    return path


def test_recorded_weights_sha256_is_checked(tmp_path, capsys, isolated_store):
    from mocohd_cli.loaders import describe, image_identity
    from mocohd_cli.loaders.pca_bases import pca_for

    G = randomized_generator(tiny_config(8))
    bad = _canonical(tmp_path / "edited.safetensors", G, weights_sha256="0" * 64)
    msg = f"{bad}: its recorded weights sha256 does not match its tensors (damaged or edited file)"
    for call in (
        load_image_generator,
        describe,
        image_identity,
        lambda p: import_model(p, "edited"),
        lambda p: pca_for(p, samples=100, batch=50),
    ):
        with pytest.raises(MocohdError) as e:
            call(bad)
        assert str(e.value) == msg
    assert store_files(isolated_store) == []  # in particular no PCA basis cached under the false hash
    code, out, err = run(capsys, "info", str(bad))
    assert code == 1 and msg in err and err.count("\n") == 1 and "0000000000" not in out
    # A file with no recorded hash (none is older than the hash, but one could be edited out) loads:
    # there is nothing to contradict, and its identity is computed from its tensors.
    unhashed = _canonical(tmp_path / "unhashed.safetensors", G, weights_sha256=None)
    real = canonical.weights_sha256(G.state_dict())
    assert load_image_generator(unhashed).identity["weights_sha256"] == real
    assert describe(unhashed).weights_sha256 == image_identity(unhashed)["weights_sha256"] == real


def test_configs_that_lie_about_sizes_are_refused_before_building(tmp_path, monkeypatch, isolated_store):
    from mocohd_cli.loaders import describe, image_generators

    def no_build(family, config):
        raise AssertionError(f"built a {family} module from {config}")

    monkeypatch.setattr(image_generators, "build_generator", no_build)
    monkeypatch.setattr("mocohd_cli.generators.build_generator", no_build)
    G = randomized_generator(tiny_config(8))
    cfg = G.cfg.to_dict()
    lies = [
        ({"w_dim": 10**9}, r"invalid stylegan2 config: w_dim must be in 1\.\.65536, got 1000000000"),
        ({"mapping_layers": 10**9}, r"mapping_layers must be in 1\.\.64"),
        ({"w_dim": 4096}, r"mapping\.fc0\.bias is \[32\] in the file, the config needs \[4096\]"),
        (
            {"channel_base": 2**20, "channel_max": 4096},
            r"weights do not match the stylegan2 config: synthesis\.b4\.const is \[32, 4, 4\]",
        ),
        ({"resolution": 16}, r"weights do not match the stylegan2 config \(missing \[.synthesis\.b16"),
        ({"w_dim": 32.0}, r"w_dim must be a whole number, got 32\.0"),
        ({"mapping_lr_mul": float("nan")}, r"mapping_lr_mul must be a finite number"),
    ]
    for i, (change, match) in enumerate(lies):
        path = _canonical(tmp_path / f"lie{i}.safetensors", G, config={**cfg, **change})
        for call in (load_image_generator, describe, lambda p: import_model(p, "lie")):
            with pytest.raises(MocohdError, match=f"^{re.escape(str(path))}: .*{match}"):
                call(path)
    # Converted formats: an NVIDIA pickle whose attributes lie, a .pt whose shapes claim data it has not.
    pkl = tmp_path / "lie.pkl"
    with nvidia_modules() as easydict:
        pkl.write_bytes(pickle.dumps({"G_ema": _persist(G, easydict, "", extra_state={"w_dim": 10**9})}))
    with pytest.raises(MocohdError, match=rf"^{re.escape(str(pkl))}: invalid stylegan2 config: w_dim must be in"):
        load_image_generator(pkl)
    sd = rosinality.to_rosinality_state_dict(cfg, G.state_dict())
    sd["g_ema"]["style.1.weight"] = torch.zeros(1).expand(10**6, 10**6)  # one stored value, a 4 TB claim
    pt = tmp_path / "lie.pt"
    torch.save(sd, pt)
    with pytest.raises(
        MocohdError, match=rf"^{re.escape(str(pt))}: tensor g_ema\.style\.1\.weight claims \[1000000, 1000000\] values"
    ):
        import_model(pt, "lie")
    assert store_files(isolated_store) == []


@pytest.mark.parametrize("fmt", ["safetensors", "pt", "pkl"])
def test_non_finite_weights_are_refused(tmp_path, isolated_store, fmt):
    from mocohd_cli.loaders import describe

    G = randomized_generator(tiny_config(8))
    with torch.no_grad():
        G.synthesis.b8.conv1.weight[0, 0, 1, 1] = float("nan")
        G.synthesis.b8.torgb.bias[0] = float("inf")  # sorts after conv1: the first bad tensor is named
    path = tmp_path / f"diverged.{fmt}"
    if fmt == "safetensors":
        save_canonical(path, G)
    elif fmt == "pt":
        save_rosinality(G, path)
    else:
        write_nvidia_pickle(path, G)
    match = rf"^{re.escape(str(path))}: tensor synthesis\.b8\.conv1\.weight holds NaN or infinite values"
    for call in (load_image_generator, describe, lambda p: import_model(p, "diverged")):
        with pytest.raises(MocohdError, match=match):
            call(path)
    assert store_files(isolated_store) == []


def test_state_shapes_are_the_modules():
    from mocohd_cli.generators import BigGANConfig, BigGANGenerator, StyleGAN2Config

    from .support.biggan_reference import TINY

    configs = [
        tiny_config(8),
        tiny_config(32, img_channels=4, mapping_layers=3, conv_clamp=256.0),
        StyleGAN2Config(resolution=64, z_dim=16, w_dim=24, channel_base=512, channel_max=64),
    ]
    for cfg in configs:
        assert cfg.state_shapes() == {k: tuple(v.shape) for k, v in StyleGAN2Generator(cfg).state_dict().items()}
    for attention in (0, 4, 6):
        cfg = BigGANConfig(
            resolution=32,
            z_dim=8,
            embed_dim=8,
            channel_width=8,
            num_classes=10,
            layers=TINY["layers"],
            attention=attention,
            n_stats=5,
        )
        assert cfg.state_shapes() == {k: tuple(v.shape) for k, v in BigGANGenerator(cfg).state_dict().items()}
