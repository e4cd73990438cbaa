"""Latent PCA: exact statistics, streaming, seeding, caching, official files."""

import re

import numpy as np
import pytest
import torch

from mocohd_cli import MocohdError, import_model, pca, store
from mocohd_cli.formats import canonical
from mocohd_cli.formats.mocogan_hd import read_official
from mocohd_cli.loaders import pca_bases as pca_store

from .conftest import randomized_generator, run, save_canonical, tiny_config


def _samples(G, n, batch, seed):
    """The w's fit_pca sees: z drawn on the CPU from ``seed`` in batches of ``batch``."""
    gen = torch.Generator().manual_seed(seed)
    ws = []
    with torch.no_grad():
        for start in range(0, n, batch):
            ws.append(G.mapping(torch.randn(min(batch, n - start), G.z_dim, generator=gen)))
    return torch.cat(ws).double().numpy()


@pytest.fixture
def G():
    return randomized_generator(tiny_config(8, z_dim=16, w_dim=12))


def test_matches_numpy_eigh(G):
    basis = pca.fit_pca(G, samples=3000, batch=700, seed=5)
    w = _samples(G, 3000, 700, 5)
    cov = np.cov(w, rowvar=False)  # n - 1
    evals, evecs = np.linalg.eigh(cov)
    evals, evecs = evals[::-1], evecs[:, ::-1]
    np.testing.assert_allclose(basis.stdev.numpy(), np.sqrt(evals), rtol=1e-5)
    np.testing.assert_allclose(basis.var_ratio.numpy(), evals / evals.sum(), rtol=1e-5)
    np.testing.assert_allclose(basis.mean.numpy(), w.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(basis.var.numpy(), w.var(0), rtol=1e-5)
    dots = np.abs(np.sum(basis.components.double().numpy() * evecs.T, axis=1))
    np.testing.assert_allclose(dots, 1.0, atol=1e-5)  # same directions, up to sign
    comps = basis.components
    torch.testing.assert_close(comps @ comps.t(), torch.eye(12), atol=1e-5, rtol=0)
    # sign convention: the largest-magnitude entry of each row is positive
    assert (comps.gather(1, comps.abs().argmax(1, keepdim=True)) > 0).all()
    assert (basis.stdev[:-1] >= basis.stdev[1:]).all()


def test_streaming_does_not_depend_on_batch_size(G):
    a = pca.fit_pca(G, samples=2000, batch=2000, seed=1)
    w = _samples(G, 2000, 2000, 1)
    # same samples in small batches: draw them the same way, feed the accumulator in pieces
    m = pca._Moments(G.w_dim, torch.device("cpu"))
    for part in np.array_split(w, 13):
        m.add(torch.from_numpy(part))
    b = pca._basis_from_moments(m, G.w_dim, {})
    torch.testing.assert_close(a.stdev, b.stdev, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(a.mean, b.mean, rtol=1e-6, atol=1e-7)


def test_seeded(G):
    a, b = pca.fit_pca(G, samples=500, batch=128, seed=3), pca.fit_pca(G, samples=500, batch=128, seed=3)
    assert torch.equal(a.components, b.components) and torch.equal(a.stdev, b.stdev)
    c = pca.fit_pca(G, samples=500, batch=128, seed=4)
    assert not torch.equal(a.stdev, c.stdev)


def test_store_cache_keyed_by_generator(G, tmp_path, monkeypatch):
    path = tmp_path / "g.safetensors"
    save_canonical(path, G)
    basis, stored, computed = pca_store.pca_for(path, samples=400, batch=100)
    assert computed and stored == store.store_path("pca", "g")
    assert basis.info["image_sha256"] == canonical.read_header(path).weights_sha256

    def no_refit(*a, **k):
        raise AssertionError("refitted")

    monkeypatch.setattr(pca_store, "fit_pca", no_refit)
    again, _, computed = pca_store.pca_for(path, samples=400, batch=100)
    assert not computed and torch.equal(again.components, basis.components)
    with pytest.raises(AssertionError):  # other settings, asked for exactly: refit
        pca_store.pca_for(path, samples=800, exact=True)


def test_a_stored_basis_names_its_generator_in_its_metadata(G, tmp_path, monkeypatch):
    """The generator's identity is the file's mocohd.image, not part of its config; a basis
    stored before (the identity in its config) is still found in the cache and reads the same."""
    path = tmp_path / "g.safetensors"
    save_canonical(path, G)
    basis, stored, _ = pca_store.pca_for(path, samples=400, batch=100)
    h, sha = canonical.read_header(stored), canonical.read_header(path).weights_sha256
    assert h.image == {"image_name": "g", "image_sha256": sha} and "image_sha256" not in h.config
    canonical.save_model(stored, basis.tensors(), kind="pca", family=pca.PCA_FAMILY, config=basis.config())  # as before
    assert "image_sha256" in canonical.read_header(stored).metadata["mocohd.config"]
    monkeypatch.setattr(pca_store, "fit_pca", lambda *a, **k: pytest.fail("refitted"))
    again, _, computed = pca_store.pca_for(path, samples=400, batch=100)
    assert not computed and again.info == basis.info and again.info["image_sha256"] == sha


def test_official_npy_folder_imports(tmp_path):
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(12, 12)))
    np.save(tmp_path / "pca_comp.npy", q.T.astype(np.float32))
    np.save(tmp_path / "pca_stdev.npy", np.linspace(2, 0.1, 12).astype(np.float32))
    np.save(tmp_path / "style_mean.npy", np.zeros(12, np.float32))
    h = import_model(tmp_path, "official", kind="pca")
    assert h.kind == "pca"
    basis = pca_store.load_pca(h.path)
    np.testing.assert_allclose(basis.components.numpy(), q.T, atol=1e-6)
    assert basis.mean is not None and basis.var is None


def test_official_folder_without_components_is_refused(tmp_path):
    np.save(tmp_path / "pca_stdev.npy", np.ones(3, np.float32))
    with pytest.raises(MocohdError, match="pca_comp.npy"):
        import_model(tmp_path, "x", kind="pca")
    (tmp_path / "pca_comp.npy").write_bytes(b"\x93NUMPY junk")
    with pytest.raises(MocohdError, match="not a readable .npy"):
        import_model(tmp_path, "x", kind="pca")


def test_cli_pca(capsys, isolated_store):
    code, out, err = run(capsys, "pca", "--samples", "3000", "--batch", "1000")
    assert code == 0, err
    assert "fitted" in out and (isolated_store / "pca" / "demo.safetensors").is_file()
    code, out, _ = run(capsys, "pca", "--samples", "3000", "--batch", "1000")
    assert code == 0 and "already in the store" in out
    code, out, _ = run(capsys, "info", "demo", "--kind", "pca")
    assert code == 0 and "pca" in out
    code, _, err = run(capsys, "pca", "--image", "nope", "--samples", "10")
    assert code == 1 and "unknown image model" in err


def _official_folder(folder, **arrays):
    folder.mkdir()
    for name, arr in arrays.items():
        np.save(folder / f"{name}.npy", arr)
    return folder


def test_official_folder_shapes_and_values_are_checked(tmp_path, isolated_store):
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(32, 32)))
    comp, stdev = q.T.astype(np.float32), np.linspace(2, 0.1, 32).astype(np.float32)
    nan_comp = comp.copy()
    nan_comp[3, 5] = np.nan
    cases = [
        (dict(pca_comp=comp, pca_stdev=stdev[:10]), r"pca_stdev\.npy is \[10\] but pca_comp\.npy is \[32, 32\]"),
        (dict(pca_comp=comp[:10], pca_stdev=stdev), r"pca_stdev\.npy is \[32\] but pca_comp\.npy is \[10, 32\]"),
        (
            dict(pca_comp=np.concatenate([comp, comp[:1]]), pca_stdev=np.ones(33, np.float32)),
            r"pca_comp\.npy is \[33, 32\], expected \[n, w_dim\] with n <= w_dim",
        ),
        (dict(pca_comp=comp[None], pca_stdev=stdev), r"pca_comp\.npy is \[1, 32, 32\]"),
        (
            dict(pca_comp=comp, pca_stdev=stdev, style_mean=np.zeros(31, np.float32)),
            r"style_mean\.npy is \[31\] but .* expected \[32\]",
        ),
        (dict(pca_comp=comp, pca_stdev=stdev, style_var=np.ones((32, 1), np.float32)), r"style_var\.npy is \[32, 1\]"),
        (dict(pca_comp=comp, pca_stdev=stdev, pca_var_ratio=np.ones(10, np.float32)), r"pca_var_ratio\.npy is \[10\]"),
        (dict(pca_comp=nan_comp, pca_stdev=stdev), r"pca_comp\.npy: holds NaN or infinite values"),
        (
            dict(pca_comp=comp, pca_stdev=np.full(32, np.inf, np.float32)),
            r"pca_stdev\.npy: holds NaN or infinite values",
        ),
        (dict(pca_comp=comp, pca_stdev=-stdev), "negative standard deviations"),
        (
            dict(pca_comp=comp * 3, pca_stdev=stdev),
            r"pca_comp\.npy row 0 has length 3; principal directions have length 1",
        ),
        (dict(pca_comp=comp.astype(np.complex64), pca_stdev=stdev), r"pca_comp\.npy: holds complex64 values"),
        (dict(pca_comp=np.array([["a"] * 32] * 32), pca_stdev=stdev), r"pca_comp\.npy: holds <U1 values"),
    ]
    for i, (arrays, match) in enumerate(cases):
        folder = _official_folder(tmp_path / f"case{i}", **arrays)
        with pytest.raises(MocohdError, match=rf"^{re.escape(str(folder))}.*{match}"):
            import_model(folder, "official", kind="pca")
    # a .npy whose header promises more data than the file holds
    folder = _official_folder(tmp_path / "short", pca_comp=comp, pca_stdev=stdev)
    (folder / "pca_comp.npy").write_bytes((folder / "pca_comp.npy").read_bytes()[:-100])
    with pytest.raises(MocohdError, match=r"pca_comp\.npy: not a readable \.npy array \(damaged or truncated\?\)"):
        import_model(folder, "official", kind="pca")
    with pytest.raises(MocohdError, match=r"^nonexist: no such folder$"):
        read_official("nonexist")
    assert not (isolated_store / "pca").exists()


def test_stored_basis_is_checked_before_use(tmp_path):
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(12, 12)))
    basis = pca.PCABasis(torch.from_numpy(q.T).float(), torch.linspace(2, 0.1, 12), mean=torch.zeros(12))
    good = tmp_path / "good.safetensors"
    pca_store.save_pca(basis, good)
    assert torch.equal(pca_store.load_pca(good).components, basis.components)

    def lie(name, tensors=None, config=None, **meta):
        path = tmp_path / f"{name}.safetensors"
        canonical.save_model(
            path,
            tensors or basis.tensors(),
            kind="pca",
            family=pca.PCA_FAMILY,
            config={**basis.config(), **(config or {})},
            extra_metadata={f"mocohd.{k}": v for k, v in meta.items()},
        )
        return path

    cases = [
        (lie("hash", weights_sha256="ab" * 32), "its recorded weights sha256 does not match its tensors"),
        (
            lie("n", config={"n_components": 64}),
            r"invalid latent-pca config: n_components \(64\) cannot exceed w_dim \(12\)",
        ),
        (
            lie("d", config={"n_components": 6, "w_dim": 6}),
            r"components is \[12, 12\] in the file, the config needs \[6, 6\]",
        ),
        (lie("huge", config={"w_dim": 10**9}), r"w_dim must be a whole number in 1\.\.65536, got 1000000000"),
        (lie("family", family="other"), "unknown PCA family 'other'"),
        (
            lie("stdev", tensors={**basis.tensors(), "stdev": torch.ones(5)}),
            r"stdev is \[5\] in the file, the config needs \[12\]",
        ),
        (
            lie("nan", tensors={**basis.tensors(), "stdev": torch.full((12,), float("nan"))}),
            "tensor stdev holds NaN or infinite values",
        ),
        (lie("extra", tensors={**basis.tensors(), "junk": torch.ones(3)}), r"unexpected \['junk'\]"),
    ]
    for path, match in cases:
        with pytest.raises(MocohdError, match=rf"^{re.escape(str(path))}: .*{match}"):
            pca_store.load_pca(path)
