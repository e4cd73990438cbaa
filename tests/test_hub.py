"""mocohd fetch against a local imitation of the Hugging Face Hub (no Internet).

The CLI runs in a subprocess (conftest's ``mocohd``) so that HF_ENDPOINT /
HF_HOME / HF_HUB_OFFLINE are set before huggingface_hub is imported, as they
would be for a user.
"""

import hashlib
import json
import time

import pytest
import torch

from .conftest import mocohd, store_files
from .support.hub_server import FakeHub


@pytest.fixture
def hub():
    with FakeHub() as h:
        yield h


@pytest.fixture
def checkpoint(rosinality_pt):
    """The bytes of a tiny rosinality checkpoint, as the Hub serves them."""
    return rosinality_pt.read_bytes()


def registry(tmp_path, **entry):
    base = {
        "name": "tiny",
        "aliases": ["stylegan2-tiny"],
        "kind": "image",
        "family": "stylegan2",
        "resolution": 8,
        "repo_id": "someone/tiny-gan",
        "filename": "nets/g.pt",
        "format": "rosinality",
    }
    base.update(entry)
    (tmp_path / "registry.json").write_text(json.dumps({"models": [base]}))


def test_fetch_by_name_then_cache_hit(tmp_path, hub, checkpoint):
    commit = hub.add_file("someone/tiny-gan", "nets/g.pt", checkpoint)
    registry(tmp_path, sha256=hashlib.sha256(checkpoint).hexdigest(), depicts="faces")
    code, out, err = mocohd(tmp_path, hub.url, "fetch", "stylegan2-tiny")
    assert code == 0, err
    assert "fetched" in out and store_files(tmp_path / "home") == ["image/tiny.safetensors"]
    code, out, _ = mocohd(tmp_path, hub.url, "info", "tiny")
    assert "someone/tiny-gan" in out and commit in out.replace("\n", "").replace(" ", "")
    assert any("source depicts" in line and "faces" in line for line in out.splitlines())  # kept in the file
    requests = len(hub.requests)
    code, out, _ = mocohd(tmp_path, hub.url, "fetch", "tiny")
    assert code == 0 and "already in the store" in out and len(hub.requests) == requests  # no network at all
    code, out, _ = mocohd(tmp_path, hub.url, "list")
    assert "someone/tiny-gan" in out and "in store" in out


def test_fetch_any_hub_file_by_url(tmp_path, hub, checkpoint):
    hub.add_file("other/repo", "deep/dir/model.pt", checkpoint)
    code, out, err = mocohd(tmp_path, hub.url, "fetch", "hf://other/repo/deep/dir/model.pt", "--name", "mine")
    assert code == 0, err
    assert store_files(tmp_path / "home") == ["image/mine.safetensors"]
    code, _, err = mocohd(tmp_path, hub.url, "fetch", "hf://other/repo")
    assert code == 1 and "expected one top-level .safetensors file, found 0" in err


def test_sha256_mismatch_is_refused_and_nothing_stored(tmp_path, hub, checkpoint):
    hub.add_file("someone/tiny-gan", "nets/g.pt", checkpoint)
    registry(tmp_path, sha256="0" * 64)
    code, _, err = mocohd(tmp_path, hub.url, "fetch", "tiny")
    assert code == 1 and "does not match" in err and len(err.strip().splitlines()) == 1
    assert store_files(tmp_path / "home") == []


@pytest.mark.parametrize(
    "url,message",
    [
        ("hf://nobody/missing/g.pt", "repository not found"),
        ("hf://someone/tiny-gan/nope.pt", "no such file"),
        ("hf://private/repo/g.pt", "access denied"),
    ],
)
def test_hub_errors_are_one_line(tmp_path, hub, checkpoint, url, message):
    hub.add_file("someone/tiny-gan", "nets/g.pt", checkpoint)
    hub.add_file("private/repo", "g.pt", checkpoint)
    hub.set_private("private/repo", "secret-token")
    code, _, err = mocohd(tmp_path, hub.url, "fetch", url)
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1, err
    assert store_files(tmp_path / "home") == []


def test_private_repo_with_token(tmp_path, hub, checkpoint):
    hub.add_file("private/repo", "g.pt", checkpoint)
    hub.set_private("private/repo", "secret-token")
    code, _, err = mocohd(tmp_path, hub.url, "fetch", "hf://private/repo/g.pt", env={"HF_TOKEN": "secret-token"})
    assert code == 0, err


def test_dropped_connection_then_success(tmp_path, hub, checkpoint):
    hub.add_file("someone/tiny-gan", "nets/g.pt", checkpoint)
    hub.drop_connection_once("someone/tiny-gan", "nets/g.pt", after_bytes=len(checkpoint) // 2)
    registry(tmp_path, sha256=hashlib.sha256(checkpoint).hexdigest())
    code, out, err = mocohd(tmp_path, hub.url, "fetch", "tiny")
    if code != 0:  # a clean one-line error, then the next attempt succeeds
        assert len(err.strip().splitlines()) == 1 and store_files(tmp_path / "home") == []
        code, out, err = mocohd(tmp_path, hub.url, "fetch", "tiny")
    assert code == 0, err
    assert store_files(tmp_path / "home") == ["image/tiny.safetensors"]  # verified against the pinned sha256


def test_offline(tmp_path, hub, checkpoint):
    hub.add_file("someone/tiny-gan", "nets/g.pt", checkpoint)
    registry(tmp_path)
    code, _, err = mocohd(tmp_path, hub.url, "fetch", "tiny", env={"HF_HUB_OFFLINE": "1"})
    assert code == 1 and "HF_HUB_OFFLINE" in err and len(err.strip().splitlines()) == 1
    assert mocohd(tmp_path, hub.url, "fetch", "tiny")[0] == 0
    # in the Hub cache but not in the store: offline fetch converts from the cache
    (tmp_path / "home" / "image" / "tiny.safetensors").unlink()
    code, _, err = mocohd(tmp_path, hub.url, "fetch", "tiny", env={"HF_HUB_OFFLINE": "1"})
    assert code == 0, err


def test_unreachable_hub_fails_fast(tmp_path, checkpoint):
    registry(tmp_path)
    with FakeHub() as h:  # a port that was just free and is closed now
        url = h.url
    t0 = time.time()
    code, _, err = mocohd(tmp_path, url, "fetch", "tiny")
    assert code == 1 and "cannot reach" in err and "HF_ENDPOINT" in err and "mocohd import" in err
    assert time.time() - t0 < 10 and len(err.strip().splitlines()) == 1


def test_unknown_registry_name(tmp_path, hub):
    registry(tmp_path)
    code, _, err = mocohd(tmp_path, hub.url, "fetch", "nothing-like-it")
    assert code == 1 and "hf://OWNER/REPO/PATH" in err


def _stored_motion(tmp_path):
    from mocohd_cli.loaders.motion_models import save_motion
    from mocohd_cli.motion import MotionConfig, MotionGenerator

    torch.manual_seed(0)
    M = MotionGenerator(MotionConfig(w_dim=12, noise_dim=12, h_dim=8, n_pca=4), torch.eye(12)[:4], torch.ones(4))
    path = tmp_path / "home" / "motion" / "vox.safetensors"
    return save_motion(
        path,
        M,
        image={"image_name": "ffhq", "image_sha256": "ab" * 32},
        source={"format": "mocohd", "data": "voxceleb", "steps": 1000},
    )


def test_push_then_fetch(tmp_path, hub):
    hub.write_token = "w-token"
    h = _stored_motion(tmp_path)
    sample = tmp_path / "clip.mp4"
    sample.write_bytes(b"not really a video")
    code, out, err = mocohd(
        tmp_path,
        hub.url,
        "push",
        "vox",
        "--repo",
        "me/vox-motion",
        "--sample",
        str(sample),
        "--license",
        "mit",
        env={"HF_TOKEN": "w-token"},
    )
    assert code == 0, err
    assert "mocohd fetch hf://me/vox-motion" in out
    files = hub.files("me/vox-motion")
    assert set(files) == {"vox.safetensors", "README.md", "samples/clip.mp4"}
    assert files["vox.safetensors"] == h.path.read_bytes()
    card = files["README.md"].decode()
    front = card.split("---")[1]
    for expected in (
        "library_name: mocohd",
        "license: mit",
        "- mocohd",
        "image_generator: ffhq",
        f"weights_sha256: {h.weights_sha256}",
        "training_data: voxceleb",
        "training_steps: 1000",
    ):
        assert expected in front, expected
    assert "mocohd render vox.mp4 --motion vox --image ffhq" in card and "samples/clip.mp4" in card
    # someone else fetches it by repo
    other = tmp_path / "other"
    other.mkdir()
    code, _, err = mocohd(other, hub.url, "fetch", "hf://me/vox-motion")
    assert code == 0, err
    got = other / "home" / "motion" / "vox.safetensors"  # named after the file, as the card says
    from mocohd_cli.formats import canonical

    hdr = canonical.read_header(got)
    assert hdr.kind == "motion" and hdr.weights_sha256 == h.weights_sha256
    assert hdr.source["repo"] == "me/vox-motion" and hdr.image["image_name"] == "ffhq"


def test_push_errors_are_one_line(tmp_path, hub):
    hub.write_token = "w-token"
    _stored_motion(tmp_path)
    code, _, err = mocohd(tmp_path, hub.url, "push", "vox", "--repo", "me/x")
    assert code == 1 and "not allowed to write" in err and len(err.strip().splitlines()) == 1
    code, _, err = mocohd(tmp_path, hub.url, "push", "nope", "--repo", "me/x", env={"HF_TOKEN": "w-token"})
    assert code == 1 and "unknown motion model 'nope'" in err
    code, _, err = mocohd(tmp_path, hub.url, "push", "vox", "--repo", "not-a-repo", env={"HF_TOKEN": "w-token"})
    assert code == 1 and "OWNER/NAME" in err


@pytest.mark.parametrize(
    "url,message",
    [
        ("hf://bad", "hf://bad: not a Hub address: expected hf://OWNER/REPO or hf://OWNER/REPO/PATH"),
        ("hf://", "hf://: not a Hub address"),
        ("hf://so@me/repo/g.pt", "'so@me' is not a valid Hub owner or repo name"),
        ("hf://someone/-gan/g.pt", "'-gan' is not a valid Hub owner or repo name"),
        ("hf://someone/tiny-gan/nets/", "the path must name a file in the repo"),
    ],
)
def test_malformed_hub_address_is_a_usage_error(tmp_path, hub, url, message):
    code, _, err = mocohd(tmp_path, hub.url, "fetch", url)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert "registry" not in err and hub.requests == []  # refused before asking anything


@pytest.mark.parametrize("target", ["hf://someone/tiny-gan/nets/g.pt", "hf://someone/tiny-gan", "tiny"])
def test_unknown_revision_is_named(tmp_path, hub, checkpoint, target):
    hub.add_file("someone/tiny-gan", "nets/g.pt", checkpoint)
    registry(tmp_path)
    code, _, err = mocohd(tmp_path, hub.url, "fetch", target, "--revision", "deadbeef")
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert "revision 'deadbeef' not found in the repo someone/tiny-gan" in err and "Client Error" not in err
    assert store_files(tmp_path / "home") == []


def test_fetch_keeps_a_different_model_of_that_name_and_notes_shadowing(tmp_path, hub, checkpoint):
    hub.add_file("someone/tiny-gan", "nets/g.pt", checkpoint)
    hub.add_file("other/repo", "g.pt", checkpoint)
    registry(tmp_path)
    local = tmp_path / "local.pt"
    local.write_bytes(checkpoint)
    assert mocohd(tmp_path, hub.url, "import", str(local), "--name", "tiny")[0] == 0
    before = (tmp_path / "home" / "image" / "tiny.safetensors").read_bytes()
    code, _, err = mocohd(tmp_path, hub.url, "fetch", "tiny")
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert "an image model named 'tiny' is already in the store (from local.pt)" in err and "--force" in err
    assert (tmp_path / "home" / "image" / "tiny.safetensors").read_bytes() == before and hub.requests == []
    code, _, err = mocohd(tmp_path, hub.url, "fetch", "tiny", "--force")
    assert code == 0, err
    # a Hub file stored as 'demo' hides the shipped demo generator: say so
    code, out, err = mocohd(tmp_path, hub.url, "fetch", "hf://other/repo/g.pt", "--name", "demo")
    assert code == 0 and "fetched" in out
    assert err.strip() == (
        "note: the store model 'demo' now shadows the shipped demo image model; "
        "store it under another name to keep both"
    )


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_fetch_i3d_converts_the_torchscript_archive_without_running_it(tmp_path, hub):
    """`mocohd fetch i3d`: the shipped registry's entry (flateon/FVD-I3D-torchscript), here served a
    small scripted reference I3D; it is read as data into the store as kind i3d, and eval finds it."""
    from .support.i3d_reference import make_reference

    archive = tmp_path / "i3d_torchscript.pt"
    torch.jit.script(make_reference(1 / 16, seed=0)).save(str(archive))
    hub.add_file("flateon/FVD-I3D-torchscript", "i3d_torchscript.pt", archive.read_bytes())
    code, out, err = mocohd(tmp_path, hub.url, "fetch", "i3d")
    assert code == 0, err
    assert store_files(tmp_path / "home") == ["i3d/i3d.safetensors"]
    code, out, err = mocohd(tmp_path, hub.url, "info", "i3d")
    assert code == 0 and "i3d-torchscript" in out and "flateon/FVD-I3D-torchscript" in out
    code, out, err = mocohd(tmp_path, hub.url, "fetch", "inception")
    assert code == 1 and "no copy on the Hub" in err and "mocohd import FILE --name inception --kind inception" in err
