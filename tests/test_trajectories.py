"""Latent trajectories of a dataset (data/trajectories.py): the cache equals encoding the frames
one by one, is reused only for unchanged videos of the same encoder, and says what it changed."""

import json
import shutil

import pytest
import torch
from safetensors import safe_open

from mocohd_cli.data import prepare
from mocohd_cli.data.procedural import write_dataset
from mocohd_cli.data.trajectories import encode_dataset, load_trajectories
from mocohd_cli.errors import MocohdError
from mocohd_cli.formats import canonical

from .conftest import randomized_generator, tiny_config
from .test_encoders import tiny_encoder


@pytest.fixture
def encoder():
    G = randomized_generator(tiny_config(16))
    E = tiny_encoder(G)
    torch.nn.init.normal_(E.fc1.weight, std=0.05)
    E.name, E.weights_sha256 = "enc", canonical.weights_sha256(E.state_dict())
    E.image = {"image_name": "tiny", "image_sha256": "0" * 64}
    return E.eval()


@pytest.fixture
def heads(tmp_path):
    return write_dataset(tmp_path / "heads", videos=3, frames=5, size=24, seed=0)


def test_the_cache_is_every_frame_encoded_one_by_one(heads, encoder):
    cache = encode_dataset(heads, encoder, batch=2)
    assert cache.changed == {"encoded": 3} and cache.change_note() == "latent trajectories: 3 videos encoded"
    clips = prepare(heads, frame_size=16, min_frames=1).cache
    index = json.loads((clips / "index.json").read_text())
    assert cache.clips == clips and set(cache.videos) == {v["signature"] for v in index["videos"]}
    for v in index["videos"]:
        with safe_open(str(clips / v["file"]), framework="pt") as f:
            frames = f.get_tensor("frames")
        with torch.no_grad():
            one_by_one = torch.cat([encoder(f[None].permute(0, 3, 1, 2).float() / 127.5 - 1) for f in frames])
        ws = cache.whole(v["signature"])
        assert ws.shape == (5, encoder.num_ws, encoder.w_dim) and ws.dtype == torch.float32
        assert torch.allclose(ws, one_by_one, atol=1e-5), (ws - one_by_one).abs().max()
        assert torch.equal(cache.clip(v["signature"], 1, 4, 2), ws[1:5:2])
    again = load_trajectories(clips, encoder.weights_sha256)
    assert again.videos == cache.videos and again.encoder == {"name": "enc", "weights_sha256": encoder.weights_sha256}


def test_only_changed_videos_are_encoded_again_and_another_encoder_never_meets_them(heads, encoder):
    first = encode_dataset(heads, encoder)
    files = {p.name: p.stat().st_mtime_ns for p in first.folder.glob("*.safetensors")}
    second = encode_dataset(heads, encoder)
    assert second.changed == {} and second.change_note() == ""
    assert {p.name: p.stat().st_mtime_ns for p in second.folder.glob("*.safetensors")} == files

    shutil.rmtree(heads / "video_0002")
    (heads / "video_0000" / "0004.png").write_bytes((heads / "video_0000" / "0003.png").read_bytes())
    third = encode_dataset(heads, encoder)
    assert third.changed == {"re-encoded": 1, "removed": 1}
    assert len(list(third.folder.glob("*.safetensors"))) == 2 == len(third.videos)
    assert third.change_note() == "latent trajectories: 1 video re-encoded, 1 removed"

    other = encoder.__class__(encoder.cfg, w_avg=encoder.w_avg)
    other.name, other.weights_sha256, other.image = "other", "f" * 64, {}
    assert load_trajectories(third.clips, other.weights_sha256) is None
    fourth = encode_dataset(heads, other.eval())
    assert fourth.folder != third.folder and fourth.changed == {"encoded": 2}


def test_a_damaged_index_or_file_is_encoded_again_never_trusted(heads, encoder):
    cache = encode_dataset(heads, encoder)
    (cache.folder / "index.json").write_text("{not json")
    assert encode_dataset(heads, encoder).changed == {"encoded": 3}
    victim = next(iter(cache.videos.values()))["file"]
    (cache.folder / victim).unlink()
    assert encode_dataset(heads, encoder).changed == {"re-encoded": 1}


def test_what_cannot_be_encoded_is_refused_in_one_line(tmp_path, encoder):
    (tmp_path / "empty").mkdir()
    with pytest.raises(MocohdError) as e:
        encode_dataset(tmp_path / "empty", encoder)
    assert "\n" not in str(e.value)
    encoder.weights_sha256 = None
    with pytest.raises(MocohdError, match="no weights sha256"):
        encode_dataset(write_dataset(tmp_path / "h", videos=1, frames=2, size=16), encoder)


def test_tiled_clips_cover_every_video_round_robin_up_to_a_limit(heads, encoder):
    from mocohd_cli.data.trajectories import TrajectoryClips

    cache = encode_dataset(heads, encoder, batch=2)
    data = TrajectoryClips(prepare(heads, frame_size=16, min_frames=1).cache, cache, frames=2, time_step=1)
    lengths = [v["frames"] for v in data.videos]
    whole = [cache.whole(v["signature"]).float().mean(dim=1) for v in data.videos]
    every = data.tiled()
    assert len(every) == sum(n // 2 for n in lengths)
    first = torch.stack([ws[:2] for ws in whole])  # round-robin: every video's first clip comes first
    assert torch.equal(every[: len(whole)], first)
    assert torch.equal(data.tiled(limit=2), first[:2])
