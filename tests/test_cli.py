"""The command line: output, exit codes, one-line errors, --debug."""

import subprocess
import sys

import pytest
import torch

from mocohd_cli import __version__, cli
from mocohd_cli.formats import rosinality

from .conftest import randomized_generator, tiny_config
from .nvidia_pickle import HostileReduce


def run(capsys, *args):
    """Run the CLI in-process; return (exit code, stdout, stderr)."""
    code = 0
    try:
        cli.main(list(args))
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(autouse=True)
def no_debug(monkeypatch):
    monkeypatch.setattr(cli, "_debug", False)


def test_version_and_help(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and __version__ in out
    code, out, _ = run(capsys, "--help")
    assert code == 0 and all(c in out for c in ("list", "info", "import"))


def test_usage_error_is_exit_2(capsys):
    code, _, err = run(capsys, "import")
    assert code == 2 and "Missing" in err


def test_list_shows_registry_and_store(capsys, tmp_path):
    G = randomized_generator(tiny_config(8))
    pt = tmp_path / "g.pt"
    torch.save(rosinality.to_rosinality_state_dict(G.cfg.to_dict(), G.state_dict()), pt)
    assert run(capsys, "import", str(pt), "--name", "mine")[0] == 0
    code, out, _ = run(capsys, "list")
    assert code == 0 and "demo" in out and "shipped" in out and "mine" in out and "store" in out


def test_import_then_info(capsys, tmp_path, isolated_store):
    G = randomized_generator(tiny_config(16))
    pt = tmp_path / "g.pt"
    torch.save(rosinality.to_rosinality_state_dict(G.cfg.to_dict(), G.state_dict()), pt)
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
        (("import", "{evil}", "--name", "x", "--kind", "motion"), "is a PyTorch checkpoint, which holds image generators"),
        (("import", "{junk}", "--name", "x", "--kind", "video"), "--kind must be one of"),
    ],
)
def test_errors_are_one_line(capsys, tmp_path, isolated_store, args, message):
    (tmp_path / "junk.bin").write_bytes(b"\x00junk" * 10)
    torch.save({"g_ema": HostileReduce(tmp_path / "pwned")}, tmp_path / "evil.pt")
    args = [a.format(junk=tmp_path / "junk.bin", evil=tmp_path / "evil.pt") for a in args]
    code, out, err = run(capsys, *args)
    assert code == (2 if "--kind must" in message else 1)  # a kind that does not exist is a usage error
    assert "a unknown" not in err and not (tmp_path / "pwned").exists()
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
    env_debug = subprocess.run(cmd, capture_output=True, text=True, env={**__import__("os").environ, "MOCOHD_DEBUG": "1"})
    assert "Traceback" in env_debug.stderr


def test_unreadable_store_is_one_line(capsys, isolated_store):
    isolated_store.parent.mkdir(parents=True, exist_ok=True)
    isolated_store.write_text("a file where the store should be")
    code, _, err = run(capsys, "list")
    assert code == 1 and "not a folder" in err and len(err.strip().splitlines()) == 1


def test_import_does_not_silently_replace(capsys, tmp_path):
    G = randomized_generator(tiny_config(8))
    pt = tmp_path / "g.pt"
    torch.save(rosinality.to_rosinality_state_dict(G.cfg.to_dict(), G.state_dict()), pt)
    assert run(capsys, "import", str(pt), "--name", "twice")[0] == 0
    code, _, err = run(capsys, "import", str(pt), "--name", "twice")
    assert code == 1 and "already exists" in err and "--force" in err
    assert run(capsys, "import", str(pt), "--name", "twice", "--force")[0] == 0
