"""The StyleGAN-V clip protocol (mocohd_cli/metrics/protocol.py) on tiny procedural datasets and
in-memory videos: seeds, offsets, skipped videos, subsampling, counts, detector input."""

import numpy as np
import pytest
import torch

from mocohd_cli.data import prepare
from mocohd_cli.data.procedural import write_dataset
from mocohd_cli.errors import MocohdError, UsageError
from mocohd_cli.metrics.protocol import PROTOCOLS, Protocol, sample_real_clips, to_detector_input


def numbered(lengths, size=2):
    """Video i, frame t: channel 0 holds t, channel 1 holds i (so clips show which frames they took)."""
    out = []
    for i, n in enumerate(lengths):
        v = torch.zeros(n, size, size, 3, dtype=torch.uint8)
        v[..., 0] = torch.arange(n, dtype=torch.uint8)[:, None, None]
        v[..., 1] = i
        out.append(v)
    return out


def frame_numbers(clips):
    return clips[..., 0, 0, 0].long().tolist()


def test_protocol_table():
    assert {k: (p.frames, p.step, p.count, p.detector, p.ddof) for k, p in PROTOCOLS.items()} == {
        "fvd16": (16, 1, 2048, "i3d", 0),
        "fvd128": (128, 1, 2048, "i3d", 0),
        "fvd128-sub8": (16, 8, 2048, "i3d", 0),
        "fid": (1, 1, 50_000, "inception", 1),
    }
    assert (PROTOCOLS["fvd128-sub8"].span, PROTOCOLS["fvd128-sub8"].min_length) == (121, 128)


def test_seeds_offsets_and_consecutive_frames():
    videos = numbered([40, 40, 40, 40])
    a = torch.cat(list(sample_real_clips(videos, "fvd16", n=4, seed=0, batch=3)))
    b = torch.cat(list(sample_real_clips(videos, "fvd16", n=4, seed=0, batch=1)))
    c = sample_real_clips(videos, "fvd16", n=4, seed=1)
    assert a.shape == (4, 16, 2, 2, 3) and a.dtype == torch.uint8
    assert torch.equal(a, b)  # the same seed: the same clips, whatever the batch
    assert [s for _, s in c.plan] != [s for _, s in sample_real_clips(videos, "fvd16", n=4, seed=0).plan]
    for clip in frame_numbers(a):
        assert clip == list(range(clip[0], clip[0] + 16)) and 0 <= clip[0] <= 40 - 16
    assert a[:, 0, 0, 0, 1].tolist() == [0, 1, 2, 3]  # one clip per video, in order
    fakes = sample_real_clips(videos, "fvd16", n=4, random_offset=False)
    assert all(s == 0 for _, s in fakes.plan)


def test_offsets_cover_every_valid_start():
    starts = {s for _, s in sample_real_clips(numbered([18] * 60), "fvd16", n=60, seed=3).plan}
    assert starts == {0, 1, 2}  # 18 frames: a 16-frame clip starts at 0, 1 or 2


def test_too_short_videos_are_skipped_and_counted():
    real = sample_real_clips(numbered([40, 15, 16, 3]), "fvd16", n=10)
    assert (real.skipped, real.videos, real.count, real.sources) == (2, 2, 2, [0, 2])
    with pytest.raises(MocohdError, match="no video has the 16 frames fvd16 needs \\(2 too short\\)"):
        sample_real_clips(numbered([15, 3]), "fvd16")


def test_subsampled_protocol_takes_every_eighth_frame():
    real = sample_real_clips(numbered([128, 127, 130]), "fvd128-sub8", seed=5)
    assert real.skipped == 1  # 127 frames: fewer than 16 * 8, as StyleGAN-V discards
    clips = torch.cat(list(real))
    assert clips.shape[:2] == (2, 16)
    for clip in frame_numbers(clips):
        assert clip == list(range(clip[0], clip[0] + 121, 8))
    assert frame_numbers(clips)[0][0] <= 7  # 128 frames: starts 0..7


def test_more_clips_than_videos_uses_each_once_or_cycles():
    videos = numbered([20, 20, 20])
    once = sample_real_clips(videos, "fvd16", n=7)
    assert once.count == 3  # StyleGAN-V: min(n, videos)
    cyc = sample_real_clips(videos, "fvd16", n=7, repeat=True)
    assert [v for v, _ in cyc.plan] == [0, 1, 2, 0, 1, 2, 0] and len(torch.cat(list(cyc))) == 7


def test_fid_frames_all_or_a_seeded_sample():
    videos = numbered([5, 7])
    every = sample_real_clips(videos, "fid")
    assert every.count == 12 and every.plan[5] == (1, 0)
    x = torch.cat(list(sample_real_clips(videos, "fid", n=6, seed=2, batch=4)))
    assert x.shape == (6, 1, 2, 2, 3)
    assert torch.equal(x, torch.cat(list(sample_real_clips(videos, "fid", n=6, seed=2))))
    assert sample_real_clips(videos, "fid", n=6, seed=2).plan != sample_real_clips(videos, "fid", n=6, seed=9).plan


def test_dataset_folder_and_clip_cache(tmp_path):
    root = write_dataset(tmp_path / "heads", videos=3, frames=20, size=16, seed=0)
    real = sample_real_clips(root, "fvd16", seed=0, frame_size=8)
    assert (real.count, real.skipped, real.prepared_min_frames) == (3, 0, 1)
    clips = torch.cat(list(real))
    assert clips.shape == (3, 16, 8, 8, 3) and clips.dtype == torch.uint8
    info = prepare(root, frame_size=8, min_frames=1)  # the cache the call above made: reused, the same clips
    assert info.reused and torch.equal(torch.cat(list(sample_real_clips(info, "fvd16", frame_size=8))), clips)
    assert torch.equal(torch.cat(list(sample_real_clips(info.cache, "fvd16"))), clips)
    with pytest.raises(MocohdError, match="no video has the 128 frames fvd128 needs \\(3 too short\\)"):
        sample_real_clips(info, "fvd128")


def test_detector_input_and_refusals():
    clips = torch.tensor([0, 255, 128], dtype=torch.uint8).view(1, 3, 1, 1, 1).expand(2, 3, 4, 5, 3)
    x = to_detector_input(clips)
    assert x.shape == (2, 3, 3, 4, 5) and x.dtype == torch.float32
    assert x[0, 0, :, 0, 0].tolist() == [-1.0, 1.0, pytest.approx(1 / 255, rel=1e-4)]
    with pytest.raises(UsageError, match="uint8 clips"):
        to_detector_input(clips.float())
    with pytest.raises(UsageError, match="unknown metric 'fvd17'"):
        sample_real_clips(numbered([20]), "fvd17")
    with pytest.raises(UsageError, match="n must be a positive integer"):
        sample_real_clips(numbered([20]), "fvd16", n=0)
    with pytest.raises(UsageError, match="expected uint8"):
        sample_real_clips([np.zeros((20, 2, 2, 3))], "fvd16")
    assert isinstance(PROTOCOLS["fid"], Protocol)
