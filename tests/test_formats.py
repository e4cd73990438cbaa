"""Weight import: every format round-trips to safetensors with identical outputs;
hostile, truncated and foreign files are refused cleanly."""

import io
import os
import pickle

import pytest
import torch

from mocohd_cli import MocohdError, import_model, load_image_generator
from mocohd_cli.formats import canonical, read_any, rosinality, sniff
from mocohd_cli.generators import StyleGAN2Generator

from .conftest import randomized_generator, tiny_config
from .nvidia_pickle import HostileReduce, write_nvidia_pickle


def _images(G, seed=0, batch=2):
    z = torch.randn(batch, G.z_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return G.synthesis(G.mapping(z, truncation_psi=0.8), noise_mode="const")


def _store_files(home):
    return sorted(p.relative_to(home).as_posix() for p in home.rglob("*") if p.is_file()) if home.exists() else []


def _save_rosinality(G, path):
    torch.save(rosinality.to_rosinality_state_dict(G.cfg.to_dict(), G.state_dict()), path)


# ---------------------------------------------------------------- rosinality


def test_rosinality_round_trip(tmp_path):
    G = randomized_generator(tiny_config(16, channel_max=16, channel_base=128))
    pt = tmp_path / "g.pt"
    _save_rosinality(G, pt)
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
    assert _store_files(isolated_store) == []


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
    path = tmp_path / "sg3.pkl"
    write_nvidia_pickle(path, randomized_generator(tiny_config(8)), stylegan3=True)
    with pytest.raises(MocohdError, match="StyleGAN3 is not supported yet"):
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
    _save_rosinality(G, files["pt"])
    write_nvidia_pickle(files["pkl"], G)
    canonical.save_model(files["safetensors"], G.state_dict(), kind="image", family="stylegan2", config=G.cfg.to_dict())
    return files


@pytest.mark.parametrize("fmt", ["pt", "pkl", "safetensors"])
@pytest.mark.parametrize("keep", [0.5, 0.9, 0.999])
def test_truncated_files_are_refused_cleanly(good_files, tmp_path, isolated_store, fmt, keep):
    data = good_files[fmt].read_bytes()
    bad = tmp_path / f"bad.{fmt}"
    bad.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(MocohdError, match=r"corrupt or truncated"):
        import_model(bad, "bad")
    assert _store_files(isolated_store) == []


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
    canonical.save_model(path, sd, kind="image", family="stylegan2", config=G.cfg.to_dict())
    with pytest.raises(MocohdError, match="do not match"):
        load_image_generator(path)


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch, good_files, isolated_store):
    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(canonical.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        import_model(good_files["pt"], "half")
    assert [f for f in _store_files(isolated_store)] == []


def test_canonical_metadata(good_files):
    h = canonical.read_header(good_files["safetensors"])
    assert h.format == canonical.FORMAT_VERSION and h.kind == "image"
    G = StyleGAN2Generator(tiny_config(8))
    assert set(h.shapes) == set(G.state_dict())
    assert h.weights_sha256 == canonical.weights_sha256(canonical.load_tensors(h.path))
