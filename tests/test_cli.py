"""The command line: output, exit codes, one-line errors, --debug; what it says:
`list` at 80 columns, `info` of a name with several kinds, notes when a stored
name shadows a shipped model, a model name that is also a folder, an interrupted `pca`."""

import os
import shutil
import subprocess
import sys

import pytest
import torch
from rich.console import Console

from mocohd_cli import __version__, store
from mocohd_cli.cli import model_commands
from mocohd_cli.loaders.pca_bases import save_pca
from mocohd_cli.pca import PCABasis

from .conftest import randomized_generator, run, save_rosinality, tiny_config
from .support.nvidia_pickle import HostileReduce


def test_version_and_help(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and __version__ in out
    code, out, _ = run(capsys, "--help")
    assert code == 0 and all(c in out for c in ("list", "info", "import"))


def test_usage_error_is_exit_2(capsys):
    code, _, err = run(capsys, "import")
    assert code == 2 and "Missing" in err


def test_list_shows_registry_and_store(capsys, rosinality_pt):
    assert run(capsys, "import", str(rosinality_pt), "--name", "mine")[0] == 0
    code, out, _ = run(capsys, "list")
    assert code == 0 and "demo" in out and "shipped" in out and "mine" in out and "store" in out


def test_import_then_info(capsys, tmp_path, isolated_store):
    G = randomized_generator(tiny_config(16))
    pt = save_rosinality(G, tmp_path / "g.pt")
    code, out, err = run(capsys, "import", str(pt), "--name", "tiny")
    assert code == 0, err
    assert (isolated_store / "image" / "tiny.safetensors").is_file()
    code, out, _ = run(capsys, "info", "tiny")
    assert code == 0
    for expected in ("image", "stylegan2", "16 x 16", "z 32, w 32", "rosinality", "weights sha256"):
        assert expected in out, expected
    params = sum(p.numel() for p in G.parameters())
    assert f"{params:,}" in out
    # info on the original file describes it without importing it
    code, out, _ = run(capsys, "info", str(pt))
    assert code == 0 and "not imported" in out


@pytest.mark.parametrize(
    "args,message",
    [
        (("info", "./nope.safetensors"), "no such file"),
        (("info", "dmeo"), "did you mean demo"),
        (("import", "missing.pt", "--name", "x"), "no such file"),
        (("import", "{junk}", "--name", "x"), "unrecognised file format"),
        (("import", "{evil}", "--name", "x"), "refused"),
        (("import", "{junk}", "--name", "bad name"), "invalid model name"),
        (("import", "{junk}", "--name", "x", "--kind", "motion"), "unrecognised file format"),
        (
            ("import", "{evil}", "--name", "x", "--kind", "motion"),
            "is a PyTorch checkpoint, which holds image generators",
        ),
        (("import", "{junk}", "--name", "x", "--kind", "video"), "--kind must be one of"),
    ],
)
def test_errors_are_one_line(capsys, tmp_path, isolated_store, args, message):
    (tmp_path / "junk.bin").write_bytes(b"\x00junk" * 10)
    torch.save({"g_ema": HostileReduce(tmp_path / "pwned")}, tmp_path / "evil.pt")
    args = [a.format(junk=tmp_path / "junk.bin", evil=tmp_path / "evil.pt") for a in args]
    code, out, err = run(capsys, *args)
    assert code == (2 if "--kind must" in message else 1)  # a kind that does not exist is a usage error
    assert "a unknown" not in err
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "pwned").exists()
    assert not (isolated_store / "image").exists() or not any((isolated_store / "image").iterdir())


def test_debug_shows_the_traceback(tmp_path):
    cmd = [sys.executable, "-m", "mocohd_cli", "info", str(tmp_path / "missing.pt")]
    quiet = subprocess.run(cmd, capture_output=True, text=True)
    assert quiet.returncode == 1 and "Traceback" not in quiet.stderr and "no such file" in quiet.stderr
    loud = subprocess.run(cmd[:3] + ["--debug"] + cmd[3:], capture_output=True, text=True)
    assert loud.returncode == 1 and "Traceback" in loud.stderr and "MocohdError" in loud.stderr
    env_debug = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "MOCOHD_DEBUG": "1"})
    assert "Traceback" in env_debug.stderr


def test_unreadable_store_is_one_line(capsys, isolated_store):
    isolated_store.parent.mkdir(parents=True, exist_ok=True)
    isolated_store.write_text("a file where the store should be")
    code, _, err = run(capsys, "list")
    assert code == 1 and "not a folder" in err and len(err.strip().splitlines()) == 1


def test_import_does_not_silently_replace(capsys, rosinality_pt):
    pt = rosinality_pt
    assert run(capsys, "import", str(pt), "--name", "twice")[0] == 0
    code, _, err = run(capsys, "import", str(pt), "--name", "twice")
    assert code == 1 and "already exists" in err and "--force" in err
    assert run(capsys, "import", str(pt), "--name", "twice", "--force")[0] == 0


def test_list_reads_well_at_80_columns(capsys, monkeypatch, rosinality_pt):
    monkeypatch.setattr(model_commands, "out", Console(width=80, highlight=False))
    assert run(capsys, "import", str(rosinality_pt), "--name", "mine")[0] == 0
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


def test_import_notes_a_shadowed_shipped_model(capsys, rosinality_pt):
    code, out, err = run(capsys, "import", str(rosinality_pt), "--name", "demo")
    assert code == 0 and "imported image model demo" in out
    assert err.strip() == (
        "note: the store model 'demo' now shadows the shipped demo image model; "
        "store it under another name to keep both"
    )
    code, _, err = run(capsys, "import", str(rosinality_pt), "--name", "other")
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
    assert (
        "./heads: is a folder, not a model file; to use the stored motion model 'heads', give its name alone: heads"
        in err
    )


def test_pca_interrupted_says_nothing_was_stored_and_piped_progress_is_plain(capsys, monkeypatch, isolated_store):
    real = model_commands.pca_for

    def interrupted(*args, progress=None, **kw):
        progress(1000)  # some work done, then Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(model_commands, "pca_for", interrupted)
    code, out, err = run(capsys, "pca", "--samples", "2000", "--batch", "1000")
    assert code == 130 and err.strip().splitlines()[-1].startswith("interrupted: ") and "nothing stored" in err
    assert not (isolated_store / "pca").exists()

    monkeypatch.setattr(model_commands, "pca_for", real)
    code, out, err = run(capsys, "pca", "--samples", "2000", "--batch", "1000")
    assert code == 0 and "mapping z -> w: 2000/2000 samples" in err  # stderr is not a terminal here


def test_train_names_the_option_past_its_limit(capsys, tmp_path, isolated_store):
    """`train --oscillators 100000` names --oscillators and its limit (not the
    noise size it implies), exit 2, before anything is loaded or fitted."""
    code, _, err = run(capsys, "train", "--data", str(tmp_path), "--image", "demo", "--oscillators", "100000")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "error: oscillators must be at most 65536, got 100000" in err and "noise_dim" not in err
    code, _, err = run(capsys, "train", "--data", str(tmp_path), "--image", "demo", "--noise-dim", "70000")
    assert code == 2 and "noise_dim (--noise-dim) must be at most 65536" in err
    assert not (isolated_store / "pca").exists()
