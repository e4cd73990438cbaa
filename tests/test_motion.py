"""The motion generator: the official equations, initialisation, unrolling, files."""

import json
import re

import numpy as np
import pytest
import torch

from mocohd_cli import MocohdError, import_model, store
from mocohd_cli.errors import UsageError
from mocohd_cli.formats import canonical
from mocohd_cli.loaders.motion_models import load_motion, motion_model, save_motion
from mocohd_cli.motion import FAMILY, MotionConfig, MotionGenerator

from .conftest import randomized_generator, run, save_canonical, tiny_config


def _tiny_image():
    return randomized_generator(tiny_config(8))


CFG = MotionConfig(w_dim=12, noise_dim=10, h_dim=8, n_pca=6, w_residual=0.3)


def _basis(seed=0, k=12, d=12):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g))
    return q.t()[:k].contiguous(), torch.linspace(3, 0.5, k)


def _model(seed=0, cfg=CFG):
    torch.manual_seed(seed)
    comps, stdev = _basis(seed)
    M = MotionGenerator(cfg, comps, stdev)
    with torch.no_grad():  # make the biases matter
        for name, p in M.named_parameters():
            if "bias" in name or name == "b":
                p.normal_(0, 0.1)
    return M


def _lstm(x, h, c, w_ih, w_hh, b_ih, b_hh):
    """One LSTM cell step written out: gates in PyTorch's order (input, forget, cell, output)."""
    gates = x @ w_ih.t() + b_ih + h @ w_hh.t() + b_hh
    i, f, g, o = gates.chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def _equations(M, w1, eps):
    """The motion generator's equations (mocohd_cli/motion/generator.py's docstring), restated with plain tensors."""
    lam = M.cfg.w_residual
    p = {k: v.detach() for k, v in M.state_dict().items()}
    zeros = torch.zeros(w1.shape[0], CFG.h_dim)
    h, c = _lstm(
        w1, zeros, zeros, p["enc_cell.weight_ih"], p["enc_cell.weight_hh"], p["enc_cell.bias_ih"], p["enc_cell.bias_hh"]
    )
    V, s = p["pca_components"], p["pca_stdev"]
    ws, recs = [w1], []
    for t in range(eps.shape[1]):
        h, c = _lstm(eps[:, t], h, c, p["cell.weight_ih"], p["cell.weight_hh"], p["cell.bias_ih"], p["cell.bias_hh"])
        r = torch.tanh(h @ p["w"] + p["b"])
        ws.append(ws[-1] + lam * sum(r[:, k : k + 1] * s[k] * V[k] for k in range(CFG.n_pca)))
        hc = torch.cat([h, c], 1)
        recs.append(torch.relu(hc @ p["fc1.weight"].t() + p["fc1.bias"]) @ p["fc2.weight"].t() + p["fc2.bias"])
    return torch.stack(ws, 1), torch.stack(recs, 1)


def test_trajectory_matches_the_equations():
    M = _model()
    w1 = torch.randn(3, 12)
    eps = torch.randn(3, 7, 10)
    with torch.no_grad():
        ws, eps_out, rec = M(w1, 8, eps=eps, return_eps=True)
        ref_ws, ref_rec = _equations(M, w1, eps)
    assert ws.shape == (3, 8, 12) and torch.equal(eps_out, eps)
    torch.testing.assert_close(ws, ref_ws, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(rec, ref_rec, rtol=1e-5, atol=1e-6)
    assert torch.equal(ws[:, 0], w1)


def test_steps_stay_in_the_span_of_the_first_n_pca_directions():
    M = _model()
    with torch.no_grad():
        ws = M(torch.randn(2, 12), 10)
    steps = (ws[:, 1:] - ws[:, :-1]).reshape(-1, 12)
    outside = steps - steps @ M.pca_components.t() @ M.pca_components
    assert outside.abs().max() < 1e-5 and steps.abs().max() > 1e-4


def test_official_initialisation():
    torch.manual_seed(1)
    M = MotionGenerator(MotionConfig(w_dim=64, noise_dim=64, h_dim=16, n_pca=16))
    for cell in (M.enc_cell, M.cell):
        for name in ("weight_ih", "weight_hh"):
            for block in getattr(cell, name).detach().chunk(4, dim=0):  # [h, in]: orthonormal rows
                torch.testing.assert_close(block @ block.t(), torch.eye(16), atol=1e-5, rtol=0)
        assert not cell.bias_ih.any() and not cell.bias_hh.any()
    w1 = M.fc1.weight.detach()  # [64, 32]: orthonormal columns
    torch.testing.assert_close(w1.t() @ w1, torch.eye(32), atol=1e-5, rtol=0)
    assert not M.b.any() and 0.01 < M.w.std() < 0.03


def unroll_in_chunks(M, w1: torch.Tensor, chunks: tuple[int, ...], seed: int):
    """M's trajectory from w1 of 1 + sum(chunks) frames, drawn whole and streamed in ``chunks``
    (steps per ``unroll`` call) from one seed, and again whole from the seed and from the next:
    (whole, streamed, the streamed state at the end, again, other)."""
    frames = 1 + sum(chunks)
    with torch.no_grad():
        whole = M(w1, frames, generator=torch.Generator().manual_seed(seed))
        state, parts, gen = M.start(w1), [w1[:, None]], torch.Generator().manual_seed(seed)
        for steps in chunks:
            ws, _, _, state = M.unroll(state, steps, generator=gen)
            parts.append(ws)
        again = M(w1, frames, generator=torch.Generator().manual_seed(seed))
        other = M(w1, frames, generator=torch.Generator().manual_seed(seed + 1))
    return whole, torch.cat(parts, 1), state, again, other


def test_chunked_unrolling_and_seeds():
    whole, streamed, _, again, other = unroll_in_chunks(_model(), torch.randn(2, 12), (1, 4, 6), seed=7)
    torch.testing.assert_close(streamed, whole)
    assert torch.equal(whole, again) and not torch.equal(whole, other)


def test_retarget_moves_along_the_other_basis():
    M = _model()
    comps2, stdev2 = _basis(seed=5)
    M2 = M.retarget(comps2, stdev2 * 2)
    eps, w1 = torch.randn(1, 5, 10), torch.randn(1, 12)
    with torch.no_grad():
        a, b = M(w1, 6, eps=eps), M2(w1, 6, eps=eps)
    # same PCA coordinates, re-expressed: project the steps on each basis
    da = (a[:, 1:] - a[:, :-1]) @ M.pca_components.t() / M.pca_stdev
    db = (b[:, 1:] - b[:, :-1]) @ M2.pca_components.t() / M2.pca_stdev
    torch.testing.assert_close(da, db, rtol=1e-4, atol=1e-5)
    assert torch.equal(M.pca_components, _basis(0)[0][:6])  # the original is untouched
    assert M2.input_map is None and M2.retargeted["directions"] == 6  # same w size: w1 goes in as it is


def test_a_target_with_fewer_directions_moves_along_those_it_has():
    M = _model()
    comps2, stdev2 = _basis(seed=5)
    M3 = M.retarget(comps2[:3], stdev2[:3])
    assert (M3.retargeted["directions"], M3.retargeted["n_pca"]) == (3, 6)
    eps, w1 = torch.randn(1, 5, 10), torch.randn(1, 12)
    with torch.no_grad():
        a, b = M(w1, 6, eps=eps), M3(w1, 6, eps=eps)
    da = (a[:, 1:] - a[:, :-1]) @ M.pca_components.t() / M.pca_stdev  # [1, 5, 6] coordinates
    db = (b[:, 1:] - b[:, :-1]) @ comps2.t() / stdev2  # on all 12 of the target's directions
    torch.testing.assert_close(db[..., :3], da[..., :3], rtol=1e-4, atol=1e-5)
    assert db[..., 3:].abs().max() < 1e-5  # the motion's last 3 directions are dropped


def test_another_w_size_carries_the_first_latent_through_pca_coordinates():
    """A 12-d motion model driving a 20-d generator: the encoder reads the 20-d w1 expressed in
    the model's own basis (same coordinates), and the steps are the model's, in the target's basis."""
    M = _model()
    mean12 = torch.randn(12)
    M.set_basis(M.pca_components, M.pca_stdev, mean12)
    comps20, stdev20 = _basis(seed=3, k=8, d=20)
    mean20 = torch.randn(20)
    P = M.retarget(comps20, stdev20, mean20)
    assert P.cfg.w_dim == 20 and P.retargeted["w_dim"] == 20 and P.retargeted["own_w_dim"] == 12
    coords = torch.randn(1, 6)  # a first latent in the span of both bases, by its coordinates
    w1_20 = mean20 + (coords * stdev20[:6]) @ comps20[:6]
    w1_12 = mean12 + (coords * M.pca_stdev) @ M.pca_components
    eps = torch.randn(1, 5, 10)
    with torch.no_grad():
        a, b = M(w1_12, 6, eps=eps), P(w1_20, 6, eps=eps)
    assert b.shape == (1, 6, 20) and torch.equal(b[:, 0], w1_20)  # it starts where the target's w1 is
    da = (a[:, 1:] - a[:, :-1]) @ M.pca_components.t() / M.pca_stdev
    db = (b[:, 1:] - b[:, :-1]) @ comps20[:6].t() / stdev20[:6]
    torch.testing.assert_close(db, da, rtol=1e-4, atol=1e-4)
    assert (b[:, 1:] - b[:, :-1]).abs().max() > 1e-3  # and it moves
    with pytest.raises(MocohdError, match="cannot be saved"):
        motion_model(P)
    with pytest.raises(MocohdError, match="a PCA basis is components"):
        M.retarget(torch.randn(6, 20), torch.ones(5))


def _official_files(tmp_path, M, prefix=""):
    sd = {prefix + k: v for k, v in M.state_dict().items() if not k.startswith("pca_")}
    torch.save(sd, tmp_path / "modelR_epoch_5.pth")
    pca_dir = tmp_path / "pca_stats"
    pca_dir.mkdir()
    comps, stdev = _basis(0)
    np.save(pca_dir / "pca_comp.npy", comps.numpy())
    np.save(pca_dir / "pca_stdev.npy", stdev.numpy())
    return tmp_path / "modelR_epoch_5.pth", pca_dir


@pytest.mark.parametrize("prefix,w_residual", [("", 0.2), ("module.", 0.5)])
def test_official_checkpoint_import(tmp_path, prefix, w_residual):
    M = _model(cfg=MotionConfig(w_dim=12, noise_dim=10, h_dim=8, n_pca=6, w_residual=w_residual))
    pth, pca_dir = _official_files(tmp_path, M, prefix)
    # the official file does not store lambda: 0.2 (the official default) unless told
    h = import_model(pth, "official", pca=pca_dir, **({} if w_residual == 0.2 else {"w_residual": w_residual}))
    assert h.kind == "motion" and h.config["n_pca"] == 6 and h.config["noise_dim"] == 10
    assert h.config["w_residual"] == w_residual
    M2 = load_motion("official")
    eps, w1 = torch.randn(2, 4, 10), torch.randn(2, 12)
    with torch.no_grad():
        torch.testing.assert_close(M2(w1, 5, eps=eps), _equations(M, w1, eps)[0], rtol=1e-5, atol=1e-6)
    assert M2.image == {}


def test_official_checkpoint_needs_its_pca(tmp_path, capsys):
    pth, pca_dir = _official_files(tmp_path, _model())
    code, _, err = run(capsys, "import", str(pth), "--name", "m")
    assert code == 1 and "import it together with its PCA folder" in err
    code, out, err = run(capsys, "import", str(pth), "--name", "m", "--pca", str(pca_dir))
    assert code == 0, err
    code, _, err = run(capsys, "import", str(pth), "--name", "m2", "--pca", str(pca_dir), "--image", "demo")
    assert code == 1 and "w size" in err  # demo's w is 128, this model's 12


def test_motion_file_round_trip_with_image_identity(tmp_path):
    M = _model()
    path = tmp_path / "m.safetensors"
    save_motion(path, M, image={"image_name": "g", "image_sha256": "ab" * 32})
    M2 = load_motion(path)
    assert M2.image == {"image_name": "g", "image_sha256": "ab" * 32}
    for k, v in M.state_dict().items():
        assert torch.equal(v, M2.state_dict()[k]), k
    assert load_motion("demo").cfg.n_pca == 64  # the shipped default motion
    G = _tiny_image()
    save_canonical(store.store_path("image", "imgonly"), G)
    with pytest.raises(MocohdError, match="'imgonly' is an image model"):
        load_motion("imgonly")
    with pytest.raises(MocohdError, match="is an image model, expected a motion model"):
        load_motion(store.resolve("demo").path)


def test_the_image_identity_is_metadata_and_files_written_before_still_load(tmp_path):
    """A motion file keeps its image generator's identity in a metadata entry of its own
    (mocohd.image), not in its config; files that kept it in their config (written before,
    as the shipped demo) load the same, and the config refuses keys it does not know."""
    M, ident = _model(), {"image_name": "g", "image_sha256": "ab" * 32}
    save_motion(tmp_path / "m.safetensors", M, image=ident)
    h = canonical.read_header(tmp_path / "m.safetensors")
    assert json.loads(h.metadata["mocohd.image"]) == ident == h.image and h.config == M.cfg.to_dict()
    old = tmp_path / "old.safetensors"
    canonical.save_model(old, M.state_dict(), kind="motion", family=FAMILY, config={**M.cfg.to_dict(), **ident})
    h = canonical.read_header(old)
    assert h.image == ident and "mocohd.image" not in h.metadata and h.config == M.cfg.to_dict()
    assert load_motion(old).image == ident
    demo = canonical.read_header(store.resolve("demo", kind="motion").path)
    assert json.loads(demo.metadata["mocohd.image"])["image_name"] == "heads"  # the shipped demo: rewritten with it
    assert load_motion("demo").image == demo.image and "pca_mean" in demo.shapes and load_motion("demo").has_mean
    del_mean = {k: v for k, v in M.state_dict().items() if k != "pca_mean"}  # files before pca_mean load, mean unknown
    canonical.save_model(old, del_mean, kind="motion", family=FAMILY, config=M.cfg.to_dict())
    assert not load_motion(old).has_mean and not load_motion(tmp_path / "m.safetensors").has_mean
    with pytest.raises(UsageError, match="unknown MotionConfig keys: \\['colour'\\]"):
        MotionConfig.from_dict({**M.cfg.to_dict(), "colour": 1})


def test_state_shapes_are_the_module():
    for cfg in (CFG, MotionConfig(w_dim=64, noise_dim=32, h_dim=16, n_pca=64)):
        assert cfg.state_shapes() == {k: tuple(v.shape) for k, v in MotionGenerator(cfg).state_dict().items()}


def test_import_with_a_missing_pca_folder(tmp_path, capsys):
    pth, _ = _official_files(tmp_path, _model())
    code, _, err = run(capsys, "import", str(pth), "--name", "m", "--pca", "nonexist")
    assert code == 1 and err.count("\n") == 1 and "nonexist: no such folder" in err


def test_official_checkpoint_and_pca_must_fit(tmp_path, isolated_store):
    pth, pca_dir = _official_files(tmp_path, _model())  # w 12, 6 directions used
    g = torch.Generator().manual_seed(3)
    other = tmp_path / "other"
    other.mkdir()
    q, _ = torch.linalg.qr(torch.randn(16, 16, generator=g))
    np.save(other / "pca_comp.npy", q.t().numpy())
    np.save(other / "pca_stdev.npy", np.ones(16, np.float32))
    with pytest.raises(
        MocohdError,
        match=(
            rf"^{other}: the PCA basis is for a 16-d w, "
            r"but the motion checkpoint modelR_epoch_5\.pth moves in a 12-d w$"
        ),
    ):
        import_model(pth, "m", pca=other)
    few = tmp_path / "few"
    few.mkdir()
    np.save(few / "pca_comp.npy", _basis(0)[0][:4].numpy())
    np.save(few / "pca_stdev.npy", np.ones(4, np.float32))
    with pytest.raises(
        MocohdError,
        match=rf"^{few}: the PCA basis has 4 directions, but the motion checkpoint modelR_epoch_5\.pth needs 6$",
    ):
        import_model(pth, "m", pca=few)
    # a checkpoint whose own tensors disagree with each other, or are not finite
    sd = torch.load(pth, weights_only=True)
    for change, match in [
        ({"fc2.weight": torch.zeros(10, 11)}, r"fc2\.weight is \[10, 11\] in the file, the config needs \[10, 10\]"),
        ({"b": torch.zeros(7)}, r"b is \[7\] in the file, the config needs \[6\]"),
        ({"w": torch.full((8, 6), float("nan"))}, "tensor w holds NaN or infinite values"),
    ]:
        torch.save({**sd, **change}, tmp_path / "bad.pth")
        with pytest.raises(MocohdError, match=rf"^{tmp_path / 'bad.pth'}: .*{match}"):
            import_model(tmp_path / "bad.pth", "m", pca=pca_dir)
    assert not (isolated_store / "motion").exists()


def test_motion_files_that_lie_are_refused_before_building(tmp_path, monkeypatch):
    from mocohd_cli.loaders import motion_models as motion

    M = _model()
    good = tmp_path / "m.safetensors"
    save_motion(good, M)
    header = canonical.read_header(good)
    tensors = canonical.load_tensors(good)

    def no_build(*a, **k):
        raise AssertionError("built a motion generator from a lying file")

    monkeypatch.setattr(motion, "MotionGenerator", no_build)
    bad_config, bad_shapes = "invalid mocogan-hd-lstm config: ", "weights do not match the mocogan-hd-lstm config: "
    cases = [
        ({"noise_dim": 10**6}, bad_config + r"noise_dim must be in 1\.\.65536, got 1000000$"),
        (
            {"noise_dim": 60000},
            bad_shapes + r"cell\.weight_ih is \[32, 10\] in the file, the config needs \[32, 60000\]$",
        ),
        ({"h_dim": 10**4}, bad_shapes + r"cell\.bias_hh is \[32\] in the file, the config needs \[40000\]$"),
        ({"n_pca": 13}, bad_config + r"n_pca must be in 1\.\.12, got 13$"),
        ({"w_residual": float("nan")}, bad_config + "w_residual must be a finite number, got nan$"),
    ]
    for i, (change, match) in enumerate(cases):
        path = tmp_path / f"lie{i}.safetensors"
        canonical.save_model(path, tensors, kind="motion", family=header.family, config={**header.config, **change})
        with pytest.raises(MocohdError, match=rf"^{re.escape(str(path))}: {match}"):
            load_motion(path)
    nan = tmp_path / "nan.safetensors"
    canonical.save_model(
        nan,
        {**tensors, "fc1.bias": torch.full((10,), float("inf"))},
        kind="motion",
        family=header.family,
        config=header.config,
    )
    with pytest.raises(MocohdError, match=rf"^{re.escape(str(nan))}: tensor fc1\.bias holds NaN or infinite values"):
        load_motion(nan)
    hashed = tmp_path / "hash.safetensors"
    canonical.save_model(
        hashed,
        tensors,
        kind="motion",
        family=header.family,
        config=header.config,
        extra_metadata={"mocohd.weights_sha256": "0" * 64},
    )
    with pytest.raises(MocohdError, match="its recorded weights sha256 does not match its tensors"):
        load_motion(hashed)
