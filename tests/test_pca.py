"""Latent PCA: exact statistics, streaming, seeding, caching, official files."""

import numpy as np
import pytest
import torch

from mocohd_cli import MocohdError, import_model, pca, store
from mocohd_cli.formats import canonical

from .conftest import randomized_generator, tiny_config
from .test_cli import run


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
    canonical.save_model(path, G.state_dict(), kind="image", family="stylegan2", config=G.cfg.to_dict())
    basis, stored, computed = pca.pca_for(path, samples=400, batch=100)
    assert computed and stored == store.store_path("pca", "g")
    assert basis.info["image_sha256"] == canonical.read_header(path).weights_sha256

    def no_refit(*a, **k):
        raise AssertionError("refitted")

    monkeypatch.setattr(pca, "fit_pca", no_refit)
    again, _, computed = pca.pca_for(path, samples=400, batch=100)
    assert not computed and torch.equal(again.components, basis.components)
    with pytest.raises(AssertionError):  # other settings, asked for exactly: refit
        pca.pca_for(path, samples=800, exact=True)


def test_official_npy_folder_imports(tmp_path):
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(12, 12)))
    np.save(tmp_path / "pca_comp.npy", q.T.astype(np.float32))
    np.save(tmp_path / "pca_stdev.npy", np.linspace(2, 0.1, 12).astype(np.float32))
    np.save(tmp_path / "style_mean.npy", np.zeros(12, np.float32))
    h = import_model(tmp_path, "official", kind="pca")
    assert h.kind == "pca"
    basis = pca.PCABasis.load(h.path)
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
