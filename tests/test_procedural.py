"""The procedural talking-head domain: deterministic, moving, not flickering,
and readable as a training dataset."""

import numpy as np

from mocohd_cli.data import ClipDataset, prepare
from mocohd_cli.data.procedural import talking_head, write_dataset


def test_deterministic_from_the_seed():
    a, b, c = talking_head(7, 20, 32), talking_head(7, 20, 32), talking_head(8, 20, 32)
    assert a.shape == (20, 32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_faces_move_smoothly():
    v = talking_head(3, 100, 48).astype(np.float32) / 255
    step = np.abs(np.diff(v, axis=0)).mean(axis=(1, 2, 3))  # frame-to-frame change
    drift = np.abs(v - v[:1]).mean(axis=(1, 2, 3))  # change from the first frame
    assert drift.max() > 0.01  # it moves: blinks, speech, head turns
    assert np.median(step) < 0.4 * drift.max()  # mostly small steps: no flicker
    assert (step > 0).mean() > 0.9  # and it rarely freezes


def test_the_mouth_opens_and_the_eyes_blink():
    """Over many videos, the lower-centre region (the mouth) and the eye band change the most."""
    S = 48
    spread = np.zeros((S, S))
    for seed in range(12):
        v = talking_head(seed, 120, S).astype(np.float32)
        spread += v.std(axis=0).mean(axis=2)
    face = spread[S // 4 : 3 * S // 4, S // 4 : 3 * S // 4]
    background = np.concatenate([spread[:, :4].ravel(), spread[:, -4:].ravel()])
    assert face.mean() > 3 * background.mean()


def test_a_written_dataset_trains(tmp_path):
    root = write_dataset(tmp_path / "heads", videos=3, frames=34, size=32, seed=1)
    assert sorted(p.name for p in root.iterdir()) == ["video_0000", "video_0001", "video_0002"]
    info = prepare(root, frame_size=16)
    assert info.videos == 3 and info.frames == 3 * 34
    clip = ClipDataset(info.cache, frames=16, time_step=2)[(0, 5)]
    assert clip.shape == (16, 16, 16, 3)
    again = write_dataset(tmp_path / "heads", videos=3, frames=34, size=32, seed=1)  # complete folders are kept
    assert again == root
