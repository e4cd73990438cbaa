"""What the CLI says: `list` at 80 columns, `info` of a name with several kinds,
notes when a stored name shadows a shipped model, a model name that is also a folder."""

import shutil

import pytest
import torch
from rich.console import Console

from mocohd_cli import cli, store
from mocohd_cli.formats import rosinality
from mocohd_cli.models.pca import save_pca
from mocohd_cli.pca import PCABasis

from .conftest import randomized_generator, tiny_config
from .test_cli import run


@pytest.fixture(autouse=True)
def no_debug(monkeypatch):
    monkeypatch.setattr(cli, "_debug", False)


@pytest.fixture
def checkpoint(tmp_path):
    G = randomized_generator(tiny_config(8))
    pt = tmp_path / "g.pt"
    torch.save(rosinality.to_rosinality_state_dict(G.cfg.to_dict(), G.state_dict()), pt)
    return pt


def test_list_reads_well_at_80_columns(capsys, monkeypatch, checkpoint):
    monkeypatch.setattr(cli, "out", Console(width=80, highlight=False))
    assert run(capsys, "import", str(checkpoint), "--name", "mine")[0] == 0
    code, out, err = run(capsys, "list")
    assert code == 0, err
    lines = out.splitlines()
    entries = store.registry()
    assert lines[0] == f"models  (store: {store.home()})"  # the store path whole, however long
    assert all(len(line) <= 80 for line in lines[1:])
    assert len(lines) <= 2 + 2 * (len(entries) + 1)  # title, header, two lines per model at most
    starts = [line.split()[0] for line in lines[2:] if line[:1] != " "]
    assert starts == [e.name for e in entries] + ["mine"]  # one model per row, names whole
    demo = next(line for line in lines if line.startswith("demo ") and " motion " in line)
    assert demo.split()[1:] == ["motion", "mocogan-hd-lstm", "shipped"]
    assert any("hub ZeqiangLai/StyleGAN2" in line for line in lines)  # repo ids are never cut
    assert any(line.endswith("…") for line in lines)  # long descriptions end in an ellipsis
    mine = lines[lines.index(next(line for line in lines if line.startswith("mine "))) + 1]
    assert mine.strip() == "imported from g.pt"


def test_info_shows_every_kind_of_a_name_and_kind_picks_one(capsys):
    save_pca(PCABasis(torch.eye(3), torch.ones(3)), store.store_path("pca", "demo"))
    code, out, err = run(capsys, "info", "demo")
    assert code == 0, err
    for heading in ("image model demo", "motion model demo", "pca model demo"):
        assert heading in out, heading
    assert "stylegan2-demo.safetensors" in out and "motion-demo.safetensors" in out
    assert "--kind image (or motion, pca) shows one" in out
    code, out, _ = run(capsys, "info", "demo", "--kind", "motion")
    assert code == 0 and "mocogan-hd-lstm" in out and "stylegan2-demo" not in out and "motion model demo" not in out
    code, out, _ = run(capsys, "info", "demo", "--kind", "pca")
    assert code == 0 and "pca/demo.safetensors" in out and "motion" not in out
    code, out, _ = run(capsys, "info", "motion-demo")  # an alias names one model
    assert code == 0 and "mocogan-hd-lstm" in out and "model demo" not in out


def test_import_notes_a_shadowed_shipped_model(capsys, checkpoint):
    code, out, err = run(capsys, "import", str(checkpoint), "--name", "demo")
    assert code == 0 and "imported image model demo" in out
    assert err.strip() == "note: the store model 'demo' now shadows the shipped demo image model; store it under another name to keep both"
    code, _, err = run(capsys, "import", str(checkpoint), "--name", "other")
    assert code == 0 and err.strip() == ""


def test_a_model_named_like_a_folder_here_renders(capsys, tmp_path, monkeypatch, isolated_store):
    # The README's flow: `mocohd train --data heads ...`, then `mocohd render --motion heads` in the same folder.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "heads").mkdir()
    (isolated_store / "motion").mkdir(parents=True)
    shutil.copy(store.weights_dir() / "motion-demo.safetensors", isolated_store / "motion" / "heads.safetensors")
    code, out, err = run(capsys, "render", "out", "--motion", "heads", "-n", "2", "--format", "png", "--device", "cpu")
    assert code == 0, err
    assert (tmp_path / "out").is_dir()
    code, _, err = run(capsys, "render", "out2", "--motion", "./heads", "-n", "2", "--format", "png")
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "./heads: is a folder, not a model file; to use the stored motion model 'heads', give its name alone: heads" in err


def test_pca_interrupted_says_nothing_was_stored_and_piped_progress_is_plain(capsys, monkeypatch, isolated_store):
    real = cli.pca_for

    def interrupted(*args, progress=None, **kw):
        progress(1000)  # some work done, then Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "pca_for", interrupted)
    code, out, err = run(capsys, "pca", "--samples", "2000", "--batch", "1000")
    assert code == 130 and err.strip().splitlines()[-1].startswith("interrupted: ") and "nothing stored" in err
    assert not (isolated_store / "pca").exists()

    monkeypatch.setattr(cli, "pca_for", real)
    code, out, err = run(capsys, "pca", "--samples", "2000", "--batch", "1000")
    assert code == 0 and "mapping z -> w: 2000/2000 samples" in err  # stderr is not a terminal here
