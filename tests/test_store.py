"""Name resolution order, the store layout, the shipped registry."""

import json
import shutil

import pytest
import torch

from mocohd_cli import MocohdError, load_image_generator, store
from mocohd_cli.formats import canonical

from .conftest import randomized_generator, save_canonical, tiny_config


def test_home_follows_mocohd_home(isolated_store):
    assert store.home() == isolated_store
    assert store.store_path("image", "x") == isolated_store / "image" / "x.safetensors"


def test_default_home_is_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("MOCOHD_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert store.home() == tmp_path / "cache" / "mocohd"


def test_shipped_demo_resolves_and_loads():
    r = store.resolve("demo")
    assert r.origin == "shipped" and r.path.name == "stylegan2-demo.safetensors"
    assert store.resolve("stylegan2-demo").path == r.path  # alias
    G = load_image_generator("demo")
    assert (G.resolution, G.w_dim) == (64, 128) and not G.training
    assert not any(p.requires_grad for p in G.parameters())
    with torch.no_grad():
        img = G.synthesis(G.mapping(torch.randn(1, G.z_dim)))
    assert img.shape == (1, 3, 64, 64) and torch.isfinite(img).all()


def test_resolution_order_path_then_store_then_shipped(tmp_path, isolated_store, monkeypatch):
    a, b, c = (randomized_generator(tiny_config(8), seed=s) for s in (1, 2, 3))
    # The store shadows the shipped model of the same name.
    save_canonical(store.store_path("image", "demo"), a)
    assert store.resolve("demo").origin == "store"
    # An existing path wins over a store name.
    monkeypatch.chdir(tmp_path)
    save_canonical(tmp_path / "demo", b)
    assert store.resolve("demo").origin == "path"
    # Paths that do not exist are reported as such, not as unknown names.
    with pytest.raises(MocohdError, match="no such file"):
        store.resolve("./missing.safetensors")
    save_canonical(store.store_path("image", "other"), c)
    assert store.resolve("other").path == isolated_store / "image" / "other.safetensors"


def test_unknown_name_suggests_close_matches():
    with pytest.raises(MocohdError, match="did you mean demo"):
        store.resolve("dmeo")
    with pytest.raises(MocohdError, match="mocohd list"):
        store.resolve("zzzzzz")


def test_registered_but_not_downloaded_asks_for_fetch(tmp_path, monkeypatch):
    wd = tmp_path / "weights"
    shutil.copytree(store.weights_dir(), wd)
    reg = json.loads((wd / "registry.json").read_text())
    reg["models"].append(
        {
            "name": "ffhq-test",
            "aliases": ["stylegan2-ffhq-test"],
            "repo_id": "someone/stylegan2",
            "filename": "ffhq.pt",
            "format": "rosinality",
            "resolution": 1024,
        }
    )
    (wd / "registry.json").write_text(json.dumps(reg))
    monkeypatch.setattr(store, "weights_dir", lambda: wd)
    with pytest.raises(MocohdError, match="mocohd fetch ffhq-test"):
        store.resolve("stylegan2-ffhq-test")


def test_kind_filter_and_wrong_kind():
    canonical.save_model(
        store.store_path("pca", "basis"), {"components": torch.eye(3)}, kind="pca", family="stylegan2", config={}
    )
    with pytest.raises(MocohdError, match="'basis' is a pca model, not an image model"):
        store.resolve("basis", kind="image")
    with pytest.raises(MocohdError, match="unknown image model"):
        store.resolve("basi", kind="image")
    assert store.resolve("basis").origin == "store"
    with pytest.raises(MocohdError, match="is a pca model, expected an image"):
        load_image_generator(store.store_path("pca", "basis"))


def test_invalid_names_are_refused():
    for bad in ("../x", "a b", "", "x.safetensors", "-x"):
        with pytest.raises(MocohdError):
            store.check_name(bad)


def test_store_listing_ignores_temporary_files(isolated_store):
    save_canonical(store.store_path("image", "one"), randomized_generator(tiny_config(4)))
    (isolated_store / "image" / ".two.safetensors.tmp-1").write_bytes(b"partial")
    assert [(k, n) for k, n, _ in store.list_store()] == [("image", "one")]


def test_store_that_is_a_file_is_reported(isolated_store):
    isolated_store.parent.mkdir(parents=True, exist_ok=True)
    isolated_store.write_text("not a folder")
    with pytest.raises(MocohdError, match="not a folder"):
        store.list_store()


def test_a_bare_name_that_is_also_a_folder_is_a_model_name(tmp_path, isolated_store, monkeypatch):
    # `mocohd train --data heads ...` stores the motion model 'heads' next to the data folder 'heads'.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "heads").mkdir()
    (tmp_path / "data").mkdir()
    save_canonical(store.store_path("image", "heads"), randomized_generator(tiny_config(4)))
    assert store.resolve("heads").origin == "store"
    assert store.resolve("heads", kind="image").path == isolated_store / "image" / "heads.safetensors"
    # A folder given as a path is still refused, with the name to use instead.
    for explicit in ("./heads", "heads/", str(tmp_path / "heads")):
        with pytest.raises(MocohdError, match="is a folder, not a model file; .* give its name alone: heads$"):
            store.resolve(explicit)
    with pytest.raises(MocohdError, match=r"^\./data: is a folder, not a model file: give a model file"):
        store.resolve("./data")
    # A folder with no model of its name: an unknown name, and the folder is mentioned.
    with pytest.raises(MocohdError, match=r"unknown model 'data' \(\./data here is a folder, not a model file\)"):
        store.resolve("data")


def test_damaged_registry_is_explained_without_python_names(tmp_path, monkeypatch):
    reg = tmp_path / "team.json"
    monkeypatch.setenv("MOCOHD_REGISTRY", str(reg))
    reg.write_text(json.dumps({"models": [{"name": "x", "repo": "a/b"}]}))
    with pytest.raises(MocohdError) as e:
        store.registry()
    assert "entry 'x' has unknown field(s) repo" in str(e.value) and "__init__" not in str(e.value)
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json")
    monkeypatch.setenv("MOCOHD_REGISTRY", str(bad))
    with pytest.raises(MocohdError, match=r"bad.json is not valid JSON \(.*line 1\)$"):
        store.registry()
    other = tmp_path / "list.json"
    other.write_text("[]")
    monkeypatch.setenv("MOCOHD_REGISTRY", str(other))
    with pytest.raises(MocohdError, match='has no "models" list'):
        store.registry()


def test_store_names_that_shadow_shipped_or_registry_models():
    assert store.shadow_note("image", "demo") == (
        "the store model 'demo' now shadows the shipped demo image model; store it under another name to keep both"
    )
    assert store.shadowed("motion", "motion-demo").file == "motion-demo.safetensors"  # an alias
    assert "registry image model ffhq (Hub ZeqiangLai/StyleGAN2)" in store.shadow_note("image", "ffhq-1024")
    assert store.shadowed("pca", "demo") is None and store.shadowed("image", "mine") is None
    # the registry's own file, fetched under its name, is that model, not a shadow
    e = store.registry_entries("ffhq")[0]
    assert store.shadowed("image", "ffhq", {"repo": e.repo_id, "file": e.filename}) is None
    with pytest.warns(store.ShadowWarning, match="shadows the shipped demo motion model"):
        assert store.warn_shadowing("motion", "demo")


def test_an_alias_stands_for_its_own_kind_only():
    from mocohd_cli.loaders.pca_bases import save_pca
    from mocohd_cli.pca import PCABasis

    save_pca(PCABasis(torch.eye(3), torch.ones(3)), store.store_path("pca", "demo"))
    assert store.resolve("demo", kind="pca").origin == "store"
    assert store.resolve("motion-demo").path.name == "motion-demo.safetensors"
    with pytest.raises(MocohdError, match="'motion-demo' is a motion model, not a pca model"):
        store.resolve("motion-demo", kind="pca")  # the motion entry's alias, not the pca 'demo'
