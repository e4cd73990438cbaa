"""Semantic edits (render --edit, --edit-layers, --truncation-cutoff) and `mocohd directions`:
PCA, SeFa and file directions move every frame's w's as they say, only on their layers; the
truncation cutoff truncates only the first w's; bad input is one line and exit 2, with nothing
written. The generators are tiny and random: an 8 px StyleGAN2 (4 w's) and a 16 px StyleGAN3."""

from types import SimpleNamespace

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from mocohd_cli import render as R
from mocohd_cli.directions import DirectionsConfig, direction_grid, directions
from mocohd_cli.edits import LatentEdit, check_edits, directions_for, parse_edit, read_direction, resolve_edits
from mocohd_cli.errors import UsageError
from mocohd_cli.formats import canonical
from mocohd_cli.frames import synthesize
from mocohd_cli.generators import StyleGAN3Config, StyleGAN3Generator
from mocohd_cli.loaders import load_image_generator
from mocohd_cli.loaders.motion_models import load_motion, save_motion
from mocohd_cli.loaders.pca_bases import pca_for
from mocohd_cli.loaders.sefa_bases import sefa_for
from mocohd_cli.motion import MotionConfig, MotionGenerator
from mocohd_cli.sefa import factorize

from .conftest import randomized_generator, run, save_canonical, store_files, tiny_config

W = 16  # w_dim of both generators


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test here is tiny: one thread (conftest)."""


@pytest.fixture
def sg2(tmp_path):
    """(the 8 px StyleGAN2 as loaded from its file, the file, a motion file trained 'with' it); its
    PCA basis is in the store, fitted on 2000 samples (edits use a stored basis as it is)."""
    path = tmp_path / "g.safetensors"
    save_canonical(path, randomized_generator(tiny_config(8, z_dim=W, w_dim=W)))
    G = load_image_generator(path)
    basis, _, _ = pca_for(path, G=G, samples=2000, batch=1000)
    torch.manual_seed(0)
    M = MotionGenerator(
        MotionConfig(w_dim=W, noise_dim=8, h_dim=8, n_pca=4, w_residual=1.0), basis.components[:4], basis.stdev[:4]
    )
    save_motion(tmp_path / "m.safetensors", M, image={"image_name": "g", "image_sha256": G.identity["weights_sha256"]})
    return G, path, tmp_path / "m.safetensors"


@pytest.fixture(scope="module")
def sg3(tmp_path_factory):
    """A 16 px StyleGAN3 (5 w's: the input transform's, 3 layers, toRGB), as loaded from its file."""
    torch.manual_seed(1)
    cfg = StyleGAN3Config(
        resolution=16, z_dim=W, w_dim=W, channel_base=128, channel_max=8, num_layers=3, num_critical=1, margin_size=2
    )
    path = tmp_path_factory.mktemp("sg3") / "g3.safetensors"
    canonical.save_model(
        path, StyleGAN3Generator(cfg).state_dict(), kind="image", family="stylegan3", config=cfg.to_dict()
    )
    return load_image_generator(path)


def ws_of(G, n=5, seed=0):
    with torch.no_grad():
        return G.mapping(torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed)))


# ---------------------------------------------------------------- what edits do to w


def test_an_edit_of_strength_zero_changes_no_frame(sg2, sg3):
    G, _, mpath = sg2
    identity_motion = MotionGenerator(
        MotionConfig(w_dim=W, noise_dim=8, h_dim=8, n_pca=4), torch.eye(W)[:4], torch.ones(4)
    )
    for generator, motion, edits in (
        (G, load_motion(mpath), ["pca:0=0", "sefa:1=0"]),
        (sg3, identity_motion, ["sefa:0=0"]),
    ):
        frames = {}
        for psi in (1.0, 0.7):
            for strength in ("0", "3"):
                edit = resolve_edits(generator, [e.replace("=0", "=" + strength) for e in edits])
                frames[psi, strength] = list(
                    R.render_frames(motion, generator, 3, videos=2, truncation=psi, seed=3, edit=edit)
                )
            plain = list(R.render_frames(motion, generator, 3, videos=2, truncation=psi, seed=3))
            assert all(torch.equal(a, b) for a, b in zip(plain, frames[psi, "0"], strict=True))
            assert not torch.equal(plain[1], frames[psi, "3"][1])


def test_a_pca_edit_moves_w_by_strength_stdev_direction_on_its_layers_only(sg2):
    G, path, _ = sg2
    basis, _, _ = pca_for(path, G=G)
    ws = ws_of(G)
    edit = resolve_edits(G, ["pca:2=1.5"], layers="1-2")
    out = edit(ws, G.mapping.w_avg)
    assert out.shape == (5, G.num_ws, W)
    step = 1.5 * basis.stdev[2] * basis.components[2]
    torch.testing.assert_close(out[:, 1:3] - ws[:, None], step.expand(5, 2, W), rtol=0, atol=1e-6)
    assert torch.equal(out[:, 0], ws) and torch.equal(out[:, 3], ws)
    # without --edit-layers: every layer; several edits add up
    both = resolve_edits(G, ["pca:2=1.5", "pca:0=-1"])(ws, G.mapping.w_avg)
    expected = ws[:, None] + step - basis.stdev[0] * basis.components[0]
    torch.testing.assert_close(both, expected.expand(5, G.num_ws, W))
    # the frames are those of the moved w's
    img = synthesize(G, ws, None, truncation=0.6, edit=edit)
    assert torch.equal(img, G.synthesis(edit(ws, G.mapping.w_avg, 0.6), noise=[None] * len(G.synthesis.layers())))


def test_edits_ride_on_w_plus_latents_and_come_after_the_truncation(sg2):
    G, _, _ = sg2
    plus = ws_of(G)[:, None].repeat(1, G.num_ws, 1) + torch.randn(5, G.num_ws, W)
    edit = resolve_edits(G, ["sefa:0=2"])
    psi = 0.5
    out = edit(plus, G.mapping.w_avg, psi)
    offset = resolve_edits(G, ["sefa:0=2"])(torch.zeros(1, W), torch.zeros(W))[0]
    torch.testing.assert_close(out, G.mapping.w_avg.lerp(plus, psi) + offset)
    assert offset[:4].any() and edit.summary == "edits: sefa:0=+2 (w's 0-3)"


def _hand_made_style_matrix(affines) -> np.ndarray:
    rows = np.concatenate([(fc.weight * fc.weight_gain).detach().double().numpy() for fc in affines])
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _check_eigenvectors(basis, A: np.ndarray):
    values, vectors = np.linalg.eigh(A.T @ A)
    values, vectors = values[::-1], vectors[:, ::-1]
    comps = basis.components.double().numpy()
    np.testing.assert_allclose(basis.eigenvalues.double().numpy(), values, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(comps, axis=1), 1, atol=1e-6)
    assert np.all(np.diff(basis.eigenvalues.numpy()) <= 0)
    # each row is numpy's eigenvector up to its sign (the eigenvalues of these random weights are distinct)
    np.testing.assert_allclose(np.abs(np.sum(comps * vectors.T, axis=1)), 1, atol=1e-5)
    np.testing.assert_allclose(comps @ (A.T @ A), values[:, None] * comps, atol=1e-5)


def test_sefa_directions_are_the_eigenvectors_of_the_style_weights(sg2, sg3):
    # StyleGAN2: w 0 modulates the 4 px conv, w 1 the 4 px toRGB and the first 8 px conv
    b4, b8 = sg2[0].synthesis.b4, sg2[0].synthesis.b8
    basis = factorize(sg2[0], (0, 1), samples=500)
    _check_eigenvectors(basis, _hand_made_style_matrix([b4.conv1.affine, b4.torgb.affine, b8.conv0.affine]))
    # StyleGAN3: w i + 1 modulates synthesis layer i; w 0 (the input transform) has no style
    layers = sg3.synthesis.conv_layers()
    basis = factorize(sg3, (0, 2), samples=500)
    _check_eigenvectors(basis, _hand_made_style_matrix([layers[0].affine, layers[1].affine]))
    with pytest.raises(UsageError, match="modulate no style layer"):
        factorize(sg3, (0, 0))
    # the stdev of w along each direction, over the seeded samples
    w = ws_of(sg3, 500).double()
    torch.testing.assert_close(basis.stdev.double(), (w @ basis.components.double().t()).std(0), rtol=1e-4, atol=1e-6)


def test_sefa_directions_are_cached_by_the_generators_weights(sg2, isolated_store):
    G = sg2[0]
    first, computed = sefa_for(G, (0, 3))
    assert computed and [p for p in store_files(isolated_store) if p.startswith("directions/")]
    again, computed = sefa_for(G, (0, 3))
    assert not computed and torch.equal(first.components, again.components)
    assert sefa_for(G, (1, 2))[1]  # other layers: another basis
    d = directions_for(G, "sefa")
    assert d.layers == (0, 3) and torch.equal(d.components, first.components)


# ---------------------------------------------------------------- direction files


def test_a_boundary_file_is_read_from_npy_and_safetensors(sg2, tmp_path):
    G = sg2[0]
    v = torch.randn(W, dtype=torch.float64)
    np.save(tmp_path / "b.npy", v.numpy())
    save_file({"boundary": v.float()[None]}, tmp_path / "b.safetensors")
    for name in ("b.npy", "b.safetensors"):
        edit = parse_edit(f"{tmp_path / name}=2.5")
        assert edit.method == "file" and edit.strength == 2.5
        torch.testing.assert_close(edit.vector, v.float())
        out = resolve_edits(G, [edit], layers="3-3")(ws_of(G), G.mapping.w_avg)
        torch.testing.assert_close(out[:, 3] - ws_of(G), (2.5 * v.float()).expand(5, W))
        assert torch.equal(out[:, :3], ws_of(G)[:, None].expand(5, 3, W))


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("ints.npy", lambda p: np.save(p, np.arange(W)), "holds int64 numbers"),
        ("pickled.npy", lambda p: np.save(p, np.array([{"a": 1}], dtype=object)), "unreadable"),
        ("matrix.npy", lambda p: np.save(p, np.ones((2, W))), r"shape \[2, 16\]"),
        ("zeros.npy", lambda p: np.save(p, np.zeros(W)), "only zeros"),
        ("nan.npy", lambda p: np.save(p, np.full(W, np.nan)), "NaN"),
        ("two.safetensors", lambda p: save_file({"a": torch.ones(W), "b": torch.ones(W)}, p), "2 tensors"),
        ("half.safetensors", lambda p: save_file({"a": torch.ones(W, dtype=torch.int32)}, p), "I32 numbers"),
        ("junk.safetensors", lambda p: p.write_bytes(b"not a tensor file"), "unreadable"),
        ("junk.npy", lambda p: p.write_bytes(b"\x93NUMPY garbage"), "unreadable"),
    ],
)
def test_a_bad_direction_file_is_refused_when_read(tmp_path, name, content, message):
    content(tmp_path / name)
    with pytest.raises(UsageError, match=message):
        read_direction(tmp_path / name)


# ---------------------------------------------------------------- truncation cutoff


def test_the_truncation_cutoff_truncates_the_first_layers_only(sg2):
    G = sg2[0]
    ws, psi = ws_of(G), 0.5
    out = resolve_edits(G, cutoff=2)(ws, G.mapping.w_avg, psi)
    torch.testing.assert_close(out[:, :2], G.mapping.w_avg.lerp(ws, psi)[:, None].expand(5, 2, W))
    assert torch.equal(out[:, 2:], ws[:, None].expand(5, 2, W))
    # a cutoff at every layer is no cutoff: the same frames, bit for bit
    every = resolve_edits(G, cutoff=G.num_ws)
    assert torch.equal(synthesize(G, ws, None, truncation=psi, edit=every), synthesize(G, ws, None, truncation=psi))
    assert resolve_edits(G) is None


def test_biggan_takes_file_directions_only():
    G = SimpleNamespace(synthesis=SimpleNamespace(), family="biggan-deep", w_dim=8, num_ws=1, identity={"name": "bg"})
    for edits, layers, cutoff, message in (
        ([parse_edit("pca:0=1")], None, None, "pca directions are for StyleGAN2 and StyleGAN3"),
        ([parse_edit("sefa:0=1")], None, None, "no principal or style directions"),
        (None, (0, 0), None, "edit layers and a truncation cutoff are for StyleGAN2"),
        (None, None, 1, "one latent for all its layers"),
    ):
        with pytest.raises(UsageError, match=message):
            check_edits(G, edits, layers, cutoff)
    boundary = torch.randn(8)
    edit = LatentEdit(1, boundary[None] * 2)
    z = torch.randn(3, 8)
    torch.testing.assert_close(edit(z, torch.zeros(8), 0.5), z * 0.5 + 2 * boundary)


# ---------------------------------------------------------------- the command line


def test_render_edit_on_the_command_line(capsys, sg2, tmp_path):
    _, g, m = sg2
    args = ["render", str(tmp_path / "f"), "--motion", str(m), "--image", str(g), "-n", "2", "--device", "cpu"]
    code, _, err = run(
        capsys, *args, "--edit", "pca:0=3", "--edit", "sefa:1=-2", "--truncation", "0.7", "--truncation-cutoff", "2"
    )
    assert code == 0, err
    assert "edits: pca:0=+3 (w's 0-3), sefa:1=-2 (w's 0-3); truncation on w's 0-1 of 4" in err
    assert run(capsys, args[0], str(tmp_path / "plain"), *args[2:])[0] == 0
    a, b = iio.imread(tmp_path / "f" / "000001.png"), iio.imread(tmp_path / "plain" / "000001.png")
    assert a.shape == b.shape == (8, 8, 3) and not np.array_equal(a, b)


BAD_RENDER = [
    (["--edit", "pca:16=1"], "no direction 16"),
    (["--edit", "pcb:1=1"], "unknown direction 'pcb:1'"),
    (["--edit", "pca:1"], "expected DIRECTION=STRENGTH"),
    (["--edit", "pca:1=lots"], "the strength must be a number"),
    (["--edit", "sefa:-1=2"], "whole number >= 0"),
    (["--edit", "sefa:0=inf"], "finite"),
    (["--edit", "{tmp}/wrong.npy=1"], "holds 17 numbers"),
    (["--edit", "{tmp}/missing.npy=1"], "no such file"),
    (["--edit", "pca:0=1", "--edit-layers", "3-1"], "at most the last"),
    (["--edit", "pca:0=1", "--edit-layers", "0-4"], "out of range"),
    (["--edit-layers", "first"], "edit layers must be A-B"),
    (["--truncation-cutoff", "0"], "whole number >= 1"),
    (["--truncation-cutoff", "5"], "cutoff 5 is out of range"),
]


@pytest.mark.parametrize("extra,message", BAD_RENDER, ids=[" ".join(a) for a, _ in BAD_RENDER])
def test_bad_edits_are_one_line_exit_2_and_nothing_written(capsys, sg2, tmp_path, isolated_store, extra, message):
    _, g, m = sg2
    np.save(tmp_path / "wrong.npy", np.ones(W + 1, dtype=np.float32))
    before = store_files(isolated_store)
    extra = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    code, out, err = run(
        capsys, "render", str(tmp_path / "v.mp4"), "--motion", str(m), "--image", str(g), "-n", "2", *extra
    )
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "v.mp4").exists() and store_files(isolated_store) == before


BAD_DIRECTIONS = [
    (["--method", "ica"], "method must be one of pca, sefa"),
    (["--count", "0"], "count must be at least 1"),
    (["--count", "17"], "count 17: "),
    (["--layers", "2-9"], "out of range"),
    (["--strengths=-1,x"], "comma-separated numbers"),
    (["--cell", "32"], "at most the generator's resolution"),
    (["--out", "{tmp}/d.jpg"], "name it with .png"),
]


@pytest.mark.parametrize("extra,message", BAD_DIRECTIONS, ids=[" ".join(a) for a, _ in BAD_DIRECTIONS])
def test_bad_directions_options_are_one_line_exit_2(capsys, sg2, tmp_path, extra, message):
    extra = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    code, _, err = run(capsys, "directions", "--image", str(sg2[1]), "--out", str(tmp_path / "d.png"), *extra)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not list(tmp_path.glob("d.*"))


def test_directions_lists_them_and_writes_a_png_of_the_right_size(capsys, sg2, tmp_path):
    G, g, _ = sg2
    code, out, err = run(
        capsys,
        "directions",
        "--image",
        str(g),
        "--method",
        "sefa",
        "--count",
        "3",
        "--strengths=-2,0,2",
        "--out",
        str(tmp_path / "s.png"),
    )
    assert code == 0, err
    assert "sefa:2" in out and "eigenvalue" in out and f"wrote {tmp_path / 's.png'} (24x24 px" in out
    picture = iio.imread(tmp_path / "s.png")
    assert picture.shape == (3 * 8, 3 * 8, 3) and picture.dtype == np.uint8
    code, out, err = run(
        capsys, "directions", "--image", str(g), "--count", "2", "--cell", "4", "--out", str(tmp_path / "p.png")
    )
    assert code == 0 and "pca:1" in out and "variance" in out, err
    assert iio.imread(tmp_path / "p.png").shape == (2 * 4, 7 * 4, 3)
    # the library: the same table and picture, with the column at strength 0 the sample itself
    result = directions(None, DirectionsConfig(image=g, method="sefa", count=2))
    assert [r.index for r in result.rows] == [0, 1] and result.path is None and result.rows[0].eigenvalue > 0
    d = directions_for(G, "pca")
    grid = direction_grid(G, d, [0, 1], (-1, 0, 1), seed=5)
    assert grid.shape == (16, 24, 3) and np.array_equal(grid[:8, 8:16], grid[8:, 8:16])
