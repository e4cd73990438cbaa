"""Music (render --audio): features of known signals, the motion following loudness, the audio
muxed in sync, and bad inputs refused in one line before any work."""

import subprocess
import wave

import imageio_ffmpeg
import numpy as np
import pytest
import torch

from mocohd_cli import audio as A, render as R
from mocohd_cli.errors import UsageError
from mocohd_cli.loaders import load_image_generator
from mocohd_cli.loaders.motion_models import load_motion

from .conftest import run

RATE = 22050


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Everything here is tiny."""


def write_wav(path, samples, rate=RATE):
    """Mono 16-bit PCM of ``samples`` in [-1, 1] (the stdlib's wave)."""
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(pcm.tobytes())
    return path


def sine(freq, seconds, amp=0.5, rate=RATE):
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_silence_has_no_loudness_nor_onsets():
    f = A.audio_features(np.zeros(RATE, np.float32), RATE, fps=10)
    assert f.frames == 10 and f.bands.shape == (10, 3)
    assert float(f.loudness.abs().max()) == 0 and float(f.onsets.max()) == 0 and float(f.bands.max()) == 0


def test_a_click_train_has_onsets_at_the_clicks_frames():
    fps, x = 10, np.zeros(3 * RATE, np.float32)
    clicks = [5, 12, 20, 27]  # frames
    for k in clicks:
        x[int(k / fps * RATE) + 100 : int(k / fps * RATE) + 140] = 0.9
    f = A.audio_features(x, RATE, fps=fps)
    assert f.frames == 30
    rises = [t for t in range(1, f.frames) if f.onsets[t] > f.onsets[t - 1] + 0.2]
    assert rises == clicks, f.onsets


def test_a_low_sine_is_in_the_low_band_and_a_high_one_in_the_high_band():
    low = A.audio_features(sine(80, 2), RATE, fps=12)
    high = A.audio_features(sine(5000, 2), RATE, fps=12)
    lo, hi = low.bands[6:].mean(0), high.bands[6:].mean(0)  # after the attack
    assert lo[0] > 0.8 and lo[1] < 0.1 and lo[2] < 0.1, lo
    assert hi[2] > 0.8 and hi[0] < 0.1 and hi[1] < 0.1, hi
    assert float(low.loudness[6:].min()) > 0.8


def test_read_audio_decodes_with_ffmpeg_and_frames_follow_the_duration(tmp_path):
    samples, rate = A.read_audio(write_wav(tmp_path / "a.wav", sine(440, 1.5, rate=44100), rate=44100))
    assert rate == A.RATE and abs(len(samples) - 1.5 * rate) < 64 and samples.dtype == np.float32
    assert A.frame_count(samples, rate, 12) == 18


def test_loud_music_moves_the_motion_and_silence_holds_it(pair):
    g, m = pair
    G, M = load_image_generator(g), load_motion(m)
    n = 12
    loud = A.audio_features(
        sine(200, n / 12) + 0.3 * np.random.default_rng(0).standard_normal(n * RATE // 12), RATE, 12
    )
    quiet = A.audio_features(np.zeros(n * RATE // 12, np.float32), RATE, 12)
    w1 = torch.randn(2, 16)

    def steps(features=None):
        walk = R.trajectory_chunks(M, w1, n, chunk=5, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            ws = torch.cat(list(A.audio_drive(G, features, "none").follow(walk) if features else walk), 1)
        return (ws[:, 1:] - ws[:, :-1]).norm(dim=-1)  # [V, n - 1]

    own = steps()
    assert float(steps(quiet).max()) == 0 and float(own.min()) > 0
    speed = A.SPEED * loud.loudness + A.KICK * loud.onsets
    torch.testing.assert_close(steps(loud), own * speed[1:])
    assert float(speed[1:].min()) > 1.2  # loud: faster than the motion model's own pace


def test_same_audio_and_seed_same_frames_and_the_bands_move_the_frames(tmp_path, pair):
    g, m = pair
    song = write_wav(tmp_path / "s.wav", sine(80, 1.0) * np.linspace(0, 1, RATE, dtype=np.float32))

    def frames(**kw):
        cfg = R.RenderConfig(motion=m, image=g, fps=8, device="cpu", audio=song, **kw)
        G, M = load_image_generator(g), load_motion(m)
        samples, rate = A.read_audio(song)
        drive = A.audio_drive(G, A.audio_features(samples, rate, 8), cfg.audio_map, cfg.audio_strength)
        return torch.stack(list(R.render_frames(M, G, 8, seed=3, audio=drive)))

    a, b = frames(), frames()
    assert torch.equal(a, b)
    assert not torch.equal(a, frames(audio_map="low=sefa:0", audio_strength=3.0))


def probe(path):
    """(seconds of video, seconds of its audio stream) of a file, by the shipped ffmpeg."""
    meta = next(imageio_ffmpeg.read_frames(str(path)))
    nframes, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
    samples, rate = A.read_audio(path)
    return nframes / meta["fps"], len(samples) / rate


@pytest.mark.parametrize("name,frames", [("v.mp4", None), ("v.webm", None), ("cut.mp4", 6), ("pad.mp4", 20)])
def test_the_audio_is_muxed_in_sync(tmp_path, pair, capsys, name, frames):
    g, m = pair
    song = write_wav(tmp_path / "s.wav", sine(300, 1.3))
    args = ["render", str(tmp_path / name), "--motion", str(m), "--image", str(g), "--fps", "10"]
    args += ["--audio", str(song), "--audio-map", "none", "--device", "cpu"] + (["-n", str(frames)] if frames else [])
    code, out, err = run(capsys, *args)
    assert code == 0, err
    video, sound = probe(tmp_path / name)
    assert abs(video - (frames or 13) / 10) < 1e-6, video
    assert abs(video - sound) <= 1 / 10, (video, sound)
    assert "music: loudness and onsets" in err


def _refused(capsys, tmp_path, *args):
    code, out, err = run(capsys, "render", *args)
    lines = [s for s in err.splitlines() if s.strip()]
    assert code == 2 and len(lines) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix in (".mp4", ".gif", "")) == [], list(
        tmp_path.iterdir()
    )
    return lines[0]


def test_bad_audio_inputs_are_one_line_and_exit_2(tmp_path, capsys):
    ff = imageio_ffmpeg.get_ffmpeg_exe()
    silent_video = tmp_path / "video-only.mkv"
    subprocess.run(
        [ff, "-v", "error", "-f", "lavfi", "-i", "color=c=red:s=16x16:d=0.5", "-c:v", "mpeg4", str(silent_video)],
        check=True,
    )
    (tmp_path / "junk.wav").write_bytes(b"not audio at all" * 10)
    song = write_wav(tmp_path / "s.wav", sine(300, 0.5))
    out = str(tmp_path / "o.mp4")
    assert "no audio stream" in _refused(capsys, tmp_path, out, "--audio", str(silent_video))
    assert "cannot decode" in _refused(capsys, tmp_path, out, "--audio", str(tmp_path / "junk.wav"))
    assert "no such file" in _refused(capsys, tmp_path, out, "--audio", str(tmp_path / "nope.wav"))
    assert "audio map entry" in _refused(capsys, tmp_path, out, "--audio", str(song), "--audio-map", "bass=pca:0")
    assert "unknown direction" in _refused(capsys, tmp_path, out, "--audio", str(song), "--audio-map", "low=pcb:1")
    assert "give --audio" in _refused(capsys, tmp_path, out, "--audio-map", "low=pca:0")
    assert "does not loop" in _refused(capsys, tmp_path, out, "--audio", str(song), "--loop")
    assert "no audio track" in _refused(capsys, tmp_path, str(tmp_path / "o.gif"), "--audio", str(song))
    assert "no audio track" in _refused(capsys, tmp_path, str(tmp_path / "frames"), "--audio", str(song))


def test_the_library_refuses_what_the_command_line_does(tmp_path):
    with pytest.raises(UsageError, match="mapped twice"):
        A.parse_audio_map("low=pca:0,low=pca:1")
    assert A.parse_audio_map("none") == {} and A.parse_audio_map(" high = sefa:3 ") == {"high": "sefa:3"}
    with pytest.raises(UsageError, match="audio strength"):
        R.RenderConfig(audio=tmp_path / "x.wav", audio_strength=float("nan"))
