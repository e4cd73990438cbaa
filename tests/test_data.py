"""Video data (mocohd_cli/data/): scanning, preparation, junk handling, clips, and
the epoch sampler that splits each epoch's clips between processes."""

import shutil

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import pytest
import torch

from mocohd_cli import MocohdError
from mocohd_cli.data import ClipDataset, EpochSampler, natural_key, prepare, scan, square_resize, to_model_input

from .conftest import run


def _frame_folder(path, n, size=(12, 16)):
    """Frame i has value 6*i everywhere (exact in PNG), names in natural, not lexical, order."""
    path.mkdir(parents=True)
    for i in range(n):
        iio.imwrite(path / f"img_{i + 1}.png", np.full((*size, 3), 6 * i, np.uint8))


def _video(path, n, size=(40, 30)):
    w, h = size
    gen = imageio_ffmpeg.write_frames(str(path), (w, h), fps=10, macro_block_size=1, ffmpeg_log_level="error")
    gen.send(None)
    for i in range(n):
        frame = np.zeros((h, w, 3), np.uint8)
        frame[:, :5] = 255  # a bright band on the left, outside the centre square
        frame[:, 5:] = 4 * i
        gen.send(frame)
    gen.close()


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "vids"
    _frame_folder(root / "clip_a", 40)
    _frame_folder(root / "clip_b", 10)  # too short for 16 frames every 2nd
    root.mkdir(exist_ok=True)
    _video(root / "v.mp4", 35)
    (root / "broken.mp4").write_bytes(b"\x00" * 1000)  # unreadable
    (root / "notes.txt").write_text("not a video")
    return root


def test_natural_order_and_scan(tmp_path, dataset):
    assert sorted(["img_10.png", "img_2.png", "img_1.png"], key=natural_key) == ["img_1.png", "img_2.png", "img_10.png"]
    videos, others = scan(dataset)
    assert [v.path.name for v in videos] == ["broken.mp4", "clip_a", "clip_b", "v.mp4"]
    assert [p.name for p in videos[1].frames[:3]] == ["img_1.png", "img_2.png", "img_3.png"]
    assert [p.name for p in others] == ["notes.txt"]


def test_prepare_skips_and_counts_junk(dataset):
    info = prepare(dataset, frame_size=8, min_frames=31)
    assert (info.videos, info.frames) == (2, 75)
    assert info.skipped == {"unreadable": 1, "too short": 1, "not videos": 1}
    assert "1 unreadable" in info.summary() and "1 too short" in info.summary()
    again = prepare(dataset, frame_size=8, min_frames=31)
    assert again.reused and again.cache == info.cache
    assert not [p for p in info.cache.iterdir() if ".tmp-" in p.name]


def test_one_cache_serves_every_clip_length(dataset):
    """Training first (31 frames per video) must not hide the short video from a later
    user of the same cache that needs fewer (train-image, evaluation)."""
    assert prepare(dataset, frame_size=8, min_frames=31).videos == 2
    every = prepare(dataset, frame_size=8, min_frames=1)
    assert every.reused and (every.videos, every.frames) == (3, 85)
    assert every.skipped == {"unreadable": 1, "too short": 0, "not videos": 1}
    assert len(ClipDataset(every.cache, frames=16, time_step=2)) == 2  # clips skip what is too short for them


def test_a_cache_that_dropped_short_videos_is_decoded_again_when_they_are_needed(dataset):
    """An index that lacks a video of the folder (as an older mocohd's did for the videos too short
    for training) gets that video decoded, the others kept; an index of the older format (version
    1) is decoded again whole."""
    import json

    info = prepare(dataset, frame_size=8, min_frames=31)
    path = info.cache / "index.json"
    index = json.loads(path.read_text())
    path.write_text(json.dumps({**index, "videos": [v for v in index["videos"] if v["frames"] >= 31]}))
    again = prepare(dataset, frame_size=8, min_frames=1)
    assert not again.reused and again.videos == 3 and again.changed == {"added": 1}
    assert json.loads(path.read_text()) == index
    path.write_text(json.dumps({**index, "version": 1, "min_frames": 31}))
    again = prepare(dataset, frame_size=8, min_frames=1)
    assert not again.reused and again.videos == 3 and again.changed == {}  # decoded whole, not refreshed
    assert json.loads(path.read_text()) == index


def test_clips_take_every_nth_frame(dataset):
    info = prepare(dataset, frame_size=8)
    ds = ClipDataset(info.cache, frames=16, time_step=2)
    assert len(ds) == 2
    clip = ds.clip(0, start=3)  # clip_a: frame i == 6 * i
    assert clip.shape == (16, 8, 8, 3) and clip.dtype == torch.uint8
    assert clip[:, 0, 0, 0].tolist() == [6 * (3 + 2 * k) for k in range(16)]
    for _ in range(5):
        c = ds[0]
        steps = torch.diff(c[:, 0, 0, 0].int())
        assert (steps == 12).all()
    x = to_model_input(torch.stack([ds[0], ds[1]]))
    assert x.shape == (2, 16, 3, 8, 8) and x.min() >= -1 and x.max() <= 1


def test_video_frames_are_centre_cropped(dataset):
    info = prepare(dataset, frame_size=8)
    clip = ClipDataset(info.cache, frames=16, time_step=2).clip(1, start=0)  # v.mp4: 40x30 -> centre 30x30
    assert clip[:, :, 0].float().mean() < 200  # the bright left band (x < 5) is cropped away
    assert abs(float(clip[10, 4, 4, 0]) - 4 * 20) < 12  # frame 20 of the video, up to codec error


def test_square_resize():
    x = torch.zeros(2, 10, 20, 3, dtype=torch.uint8)
    x[:, :, 5:15] = 200
    y = square_resize(x, 5)
    assert y.shape == (2, 5, 5, 3) and (y == 200).all()


def test_empty_or_missing_dataset(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "junk.mp4").write_bytes(b"junk")
    with pytest.raises(MocohdError, match="no usable videos"):
        prepare(tmp_path / "empty")
    with pytest.raises(MocohdError, match="not a folder"):
        prepare(tmp_path / "missing")


def test_cli_prepare(capsys, dataset):
    code, out, err = run(capsys, "prepare", "--data", str(dataset), "--frame-size", "8")
    assert code == 0, err
    assert "prepared: 2 videos" in out and "skipped 1 unreadable, 1 too short, 1 not videos" in out
    code, out, _ = run(capsys, "prepare", "--data", str(dataset), "--frame-size", "8")
    assert "reused the clip cache" in out


def test_an_absurd_frame_size_is_refused_before_any_work(capsys, dataset, isolated_store):
    """--frame-size 100000 decoded nothing ("12 unreadable") and left an empty cache folder."""
    for size in ("100000", "3"):
        code, out, err = run(capsys, "prepare", "--data", str(dataset), "--frame-size", size)
        assert code == 2 and "frame_size must be a whole number in 4..4096" in err, (size, err)
        assert len(err.strip().splitlines()) == 1
    assert not (isolated_store / "data").exists()


def test_nothing_usable_says_why_in_one_line(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MocohdError) as e:
        prepare(empty)
    msg = str(e.value)
    assert msg.startswith(f"{empty}: no usable videos: no video files (") and "folders of images" in msg
    assert "skipped )" not in msg and "0 found" not in msg
    (empty / "notes.txt").write_text("x")
    with pytest.raises(MocohdError, match=r"; 1 other file\(s\) ignored$"):
        prepare(empty)
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.mp4").write_bytes(b"junk")
    with pytest.raises(MocohdError) as e:
        prepare(junk)
    assert str(e.value) == f"{junk}: no usable videos (1 found: 1 unreadable)"
    _frame_folder(junk / "short", 5)
    with pytest.raises(MocohdError) as e:
        prepare(junk, min_frames=31)
    assert (
        str(e.value) == f"{junk}: no usable videos (2 found: 1 unreadable, 1 too short); each needs at least 31 frames"
    )


def test_unwritable_cache_is_one_line(capsys, dataset, isolated_store):
    isolated_store.parent.mkdir(parents=True, exist_ok=True)
    isolated_store.write_text("a file where the store should be")
    with pytest.raises(MocohdError, match=r"cannot create the clip cache folder .*: .* \(set MOCOHD_HOME"):
        prepare(dataset, frame_size=8)
    code, _, err = run(capsys, "prepare", "--data", str(dataset), "--frame-size", "8")
    assert code == 1 and len(err.strip().splitlines()) == 1 and "Error:" not in err, err


def test_epoch_sampler_splits_covers_and_resumes():
    s0, s1 = EpochSampler(10, 2, rank=0, world=2, seed=1), EpochSampler(10, 2, rank=1, world=2, seed=1)
    assert s0.batches_per_epoch() == 2  # 10 videos // global batch 4
    e0, e1 = s0.epoch_batches(0), s1.epoch_batches(0)
    items = [it for b in e0 + e1 for it in b]
    videos, keys = [v for v, _ in items], [k for _, k in items]
    assert len(set(videos)) == 8 and len(set(keys)) == 8  # disjoint across ranks, no repeats within an epoch
    assert s0.epoch_batches(1) != e0  # a new permutation each epoch
    it = iter(EpochSampler(10, 2, rank=0, world=2, seed=1, epoch=0, start=1))
    assert next(it) == e0[1] and next(it) == s0.epoch_batches(1)[0]
    # fewer videos than a global batch: the permutation repeats
    assert len(EpochSampler(3, 4).epoch_batches(0)[0]) == 4


# ---------------------------------------------------------------- frames of every kind, bad frames


def test_16_bit_and_grey_alpha_frames_are_rgb_of_the_right_values(dataset):
    """16-bit grey frames (PNG I;16) are scaled by their bit depth (not clamped to white), grey+alpha
    (LA) and palette frames become 3 channels, composited on white: clips are always [.., 3]."""
    from PIL import Image

    g16 = dataset / "g16"
    g16.mkdir()
    for i in range(20):
        Image.fromarray(np.full((8, 8), 257 * (10 * i), np.uint16)).save(g16 / f"f{i}.png")  # I;16
    la = dataset / "la"
    la.mkdir()
    for i in range(20):
        a = np.zeros((8, 8, 2), np.uint8)
        a[..., 0], a[:4, :, 1] = 5 * i, 255  # the top half opaque grey, the bottom transparent
        Image.fromarray(a, "LA").save(la / f"f{i}.png")
    info = prepare(dataset, frame_size=8, min_frames=1)
    ds = ClipDataset(info.cache, frames=20, time_step=1)
    by_source = {v["source"]: k for k, v in enumerate(ds.videos)}
    grey = ds.clip(by_source["g16"], 0)
    assert grey.shape == (20, 8, 8, 3) and grey[:, 0, 0, 0].tolist() == [10 * i for i in range(20)]
    alpha = ds.clip(by_source["la"], 0)
    assert alpha.shape == (20, 8, 8, 3)
    assert alpha[:, 0, 0].tolist() == [[5 * i] * 3 for i in range(20)] and (alpha[:, 7] == 255).all()
    x = to_model_input(torch.stack([ds[by_source["la"]], ds[by_source["g16"]]]))
    assert x.shape == (2, 20, 3, 8, 8)


def test_bad_frames_make_the_video_unreadable(tmp_path):
    """A frame whose pixel data stops early (Pillow would fill the rest), a frame that is not an
    image, and frames of two sizes (also across decoding batches): each video is counted
    unreadable, never decoded wrong."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    root = tmp_path / "bad"
    _frame_folder(root / "good", 3)
    _frame_folder(root / "short", 3)
    rows = b"".join(b"\x00" + bytes(48) for _ in range(4))  # 4 of the 12 rows of a 16 x 12 RGB frame
    (root / "short" / "img_2.png").write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 12, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
    _frame_folder(root / "garbage", 3)
    (root / "garbage" / "img_3.png").write_bytes(b"\x89PNG not really")
    (root / "sizes").mkdir()
    for i in range(70):  # the 66th frame, in the second batch of 64, is larger
        iio.imwrite(root / "sizes" / f"img_{i + 1}.png", np.zeros((24, 32, 3) if i == 65 else (12, 16, 3), np.uint8))
    info = prepare(root, frame_size=8, min_frames=1)
    assert info.videos == 1 and info.skipped["unreadable"] == 3


# ---------------------------------------------------------------- a changed folder, failures


def _cached_files(cache) -> dict:
    """Video file name -> (inode, mtime_ns) of a clip cache's decoded videos."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in cache.glob("*.safetensors")}


def test_a_changed_folder_is_refreshed_not_served_from_the_old_decode(capsys, dataset):
    """Videos added, changed and removed since the last prepare: only those are decoded again (the
    others' cache files stay as they were), and one line says what changed."""
    first = prepare(dataset, frame_size=8, min_frames=1)
    before = _cached_files(first.cache)
    for p in (dataset / "clip_a").iterdir():  # every frame of clip_a blacked out
        iio.imwrite(p, np.zeros((12, 16, 3), np.uint8))
    (dataset / "v.mp4").unlink()
    _frame_folder(dataset / "clip_c", 12)
    again = prepare(dataset, frame_size=8, min_frames=1)
    assert not again.reused and again.changed == {"added": 1, "changed": 1, "removed": 1}
    assert again.change_note() == "clip cache refreshed: 1 video added, 1 changed, 1 removed"
    assert again.change_note() in again.summary() and (again.videos, again.frames) == (3, 62)
    ds = ClipDataset(again.cache, frames=1, time_step=1)
    sources = [v["source"] for v in ds.videos]
    assert sources == ["clip_a", "clip_b", "clip_c"]
    assert ds.clip(0, 39).max() == 0  # the new, black frames
    after = _cached_files(again.cache)
    assert len(after) == 3 and len(set(after) & set(before)) == 1  # clip_b's file untouched, the rest gone
    kept = (set(after) & set(before)).pop()
    assert after[kept] == before[kept]
    third = prepare(dataset, frame_size=8, min_frames=1)
    assert third.reused and third.changed == {} and "refreshed" not in third.summary()
    code, out, _ = run(capsys, "prepare", "--data", str(dataset), "--frame-size", "8")
    assert code == 0 and "reused the clip cache" in out
    (dataset / "clip_b" / "img_3.png").unlink()
    code, out, _ = run(capsys, "prepare", "--data", str(dataset), "--frame-size", "8")
    assert code == 0 and "clip cache refreshed: 1 video changed" in out and len(out.strip().splitlines()) == 1
    next(again.cache.glob("*.safetensors")).unlink()  # a cache file lost: that video decoded again
    assert prepare(dataset, frame_size=8, min_frames=1).changed == {"re-decoded": 1}
    (again.cache / "index.json").write_text('{"version": 2, "videos": [{"file": "../../x"}]}')  # damaged: decoded whole
    redone = prepare(dataset, frame_size=8, min_frames=1)
    assert not redone.reused and redone.changed == {} and redone.videos == 3


def test_a_frame_replaced_with_its_size_and_time_kept_is_seen(dataset):
    """`cp -p` or an archive puts back another file with the same size and modification time:
    the status-change time in the signature still sees it."""
    import os

    prepare(dataset, frame_size=8, min_frames=1)
    frame = dataset / "clip_a" / "img_2.png"  # value 6 everywhere
    st = frame.stat()
    other = (dataset / "clip_a" / "img_3.png").read_bytes()  # value 12, compressed to as many bytes
    assert len(other) == st.st_size
    frame.write_bytes(other)
    os.utime(frame, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (frame.stat().st_size, frame.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    again = prepare(dataset, frame_size=8, min_frames=1)
    assert again.changed == {"changed": 1}
    assert ClipDataset(again.cache, frames=1, time_step=1).clip(0, 1).min() == 12


def test_a_failed_or_interrupted_prepare_leaves_nothing(tmp_path, dataset, isolated_store):
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.mp4").write_bytes(b"junk")
    with pytest.raises(MocohdError, match="no usable videos"):
        prepare(junk, frame_size=8)
    assert list((isolated_store / "data").iterdir()) == []  # no empty cache folder

    def stop_after(n):
        def progress(done, total):
            if done == n:
                raise KeyboardInterrupt

        return progress

    with pytest.raises(KeyboardInterrupt):
        prepare(dataset, frame_size=8, progress=stop_after(2))  # clip_a decoded, then cut
    assert list((isolated_store / "data").iterdir()) == []  # a first preparation cut short: no folder at all
    info = prepare(dataset, frame_size=8, min_frames=1)
    index = (info.cache / "index.json").read_bytes()
    before = _cached_files(info.cache)
    _frame_folder(dataset / "new_1", 5)
    _frame_folder(dataset / "new_2", 5)
    with pytest.raises(KeyboardInterrupt):
        prepare(dataset, frame_size=8, progress=stop_after(4))  # new_1 decoded, then cut
    assert (info.cache / "index.json").read_bytes() == index and _cached_files(info.cache) == before
    shutil.rmtree(dataset / "new_1")
    shutil.rmtree(dataset / "new_2")
    assert prepare(dataset, frame_size=8, min_frames=1).reused
    for p in list(dataset.rglob("*")):  # the folder emptied of videos: the cache goes too
        if p.is_file() and p.suffix in (".png", ".mp4"):
            p.unlink()
    with pytest.raises(MocohdError, match="no usable videos"):
        prepare(dataset, frame_size=8, min_frames=1)
    assert list((isolated_store / "data").iterdir()) == []
