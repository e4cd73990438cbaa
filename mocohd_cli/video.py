"""Writing frames: video files (mp4, webm, gif through an ffmpeg process) and PNG frame folders.

Output rules (what ``write_videos`` does with what is already there):

* A video file is encoded under a hidden temporary name next to it,
  ``.NAME.partial-PID.EXT``, checked (the encoder's exit status, a non-empty
  file, flushed to disk) and renamed over ``NAME.EXT``: an existing file of
  that name is replaced in one step, or left as it was if anything fails.
* PNG frames go into the folder named by the caller. A new folder is filled
  under a temporary name and renamed into place. An existing folder is used
  only if it is empty or holds a previous render's frames (``NNNNNN.png``
  files and the ``.mocohd-frames`` marker that mocohd writes, nothing else);
  its frames are replaced one by one, each file complete, and frames beyond
  the new count removed. Anything else in it is the user's: refused.
* A folder is never replaced by a file, nor a file by a folder.
* Temporary files left by a render that was killed (its process is gone) are
  removed when the next render to the same output starts.
"""

from __future__ import annotations

import errno
import math
import operator
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Iterable
from fractions import Fraction
from pathlib import Path

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np

from .errors import MocohdError, UsageError

FORMATS = ("mp4", "webm", "gif", "png")
SUFFIXES = {".mp4": "mp4", ".webm": "webm", ".gif": "gif", ".png": "png"}
FRAMES_MARKER = ".mocohd-frames"  # written into every PNG frame folder: "these frames are mocohd's"
MIN_FPS = 0.01
MAX_FPS = {"mp4": 1000.0, "webm": 1000.0, "gif": 100.0, "png": 1000.0}  # GIF delays are whole 1/100 s
MAX_SIDE = 16384  # the widest or tallest frame libx264 encodes
MAX_STEP_PIXELS = 8192 * 8192  # pixels of one time step of all videos (a grid frame): 192 MiB as uint8
MAX_GRID_VIDEOS = 1024  # 32 x 32 tiles
MAX_FILES = 256  # videos without --grid: one file (and one encoder process) each
_FRAME = re.compile(r"(\d{6,})\.png")
_STAGING = re.compile(r"\.partial-(\d+)")  # inside an existing frame folder
_MARKER_TEXT = (
    "Frames written by `mocohd render`. The next render into this folder replaces the NNNNNN.png\n"
    "files; a folder holding anything else is refused, so keep your own files elsewhere.\n"
)


# ----------------------------------------------------------------------------
# Names, formats and limits.


def grid_shape(n: int) -> tuple[int, int]:
    """Rows and columns of a near-square grid for n tiles."""
    cols = int(np.ceil(np.sqrt(n)))
    return int(np.ceil(n / cols)), cols


def tile(frame: np.ndarray) -> np.ndarray:  # [V, H, W, 3] -> [rows * H, cols * W, 3]
    v, h, w, c = frame.shape
    rows, cols = grid_shape(v)
    canvas = np.zeros((rows * h, cols * w, c), np.uint8)
    for i in range(v):
        r, k = divmod(i, cols)
        canvas[r * h : (r + 1) * h, k * w : (k + 1) * w] = frame[i]
    return canvas


def output_format(path: Path, fmt: str | None) -> str:
    """The format of an output: ``fmt``, else from the name (.mp4, .webm, .gif; no suffix or .png:
    a folder of PNG frames). A format that contradicts the name's suffix is refused."""
    path = Path(path)
    implied = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        if implied:
            return implied
        if path.suffix == "" or path.name in ("", ".", ".."):
            return "png"
        raise UsageError(
            f"cannot tell the format from '{path.name}': use .mp4, .webm, .gif or a folder name, "
            f"or give the format ({', '.join(FORMATS)})"
        )
    if fmt not in FORMATS:
        raise UsageError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if implied and implied != fmt:
        what = "PNG frames" if implied == "png" else f"{'an' if implied == 'mp4' else 'a'} {implied} file"
        raise UsageError(
            f"the name '{path.name}' says {what} but the format asked for is {fmt}: "
            f"name the output {path.stem + ' (a folder)' if fmt == 'png' else path.stem + '.' + fmt} "
            "or leave the format out"
        )
    return fmt


def _named(out: Path) -> Path:
    """'.', '..' and '/' have no name to build temporary or numbered names from: use the absolute path."""
    return Path(os.path.abspath(out)) if out.name in ("", ".", "..") else out


def output_paths(out: Path, videos: int, grid: bool) -> list[Path]:
    out = _named(Path(out))
    if videos == 1 or grid:
        return [out]
    return [out.with_name(f"{out.stem}_{i:03d}{out.suffix}") for i in range(videos)]


def whole(name: str, value, low: int = 1, high: int | None = None) -> int:
    """``value`` as an int in [low, high], or a UsageError naming ``name``."""
    try:
        if isinstance(value, bool):
            raise TypeError
        n = operator.index(value)
    except TypeError:
        raise UsageError(f"{name} must be a whole number, got {value!r}") from None
    if n < low or (high is not None and n > high):
        bound = f"at least {low}" if high is None else f"in {low}..{high}"
        raise UsageError(f"{name} must be {bound}, got {n}")
    return n


def check_fps(fmt: str, fps) -> float:
    """A frame rate the format can store: finite, at least MIN_FPS, at most MAX_FPS[fmt]."""
    try:
        f = float(fps)
    except (TypeError, ValueError):
        raise UsageError(f"fps must be a number, got {fps!r}") from None
    high = MAX_FPS.get(fmt, MAX_FPS["mp4"])
    if not math.isfinite(f) or not MIN_FPS <= f <= high:
        why = " (GIF frame delays are whole hundredths of a second)" if fmt == "gif" else ""
        raise UsageError(f"fps must be between {MIN_FPS:g} and {high:g} for {fmt}{why}, got {f:g}")
    return f


def check_videos(videos, grid: bool) -> int:
    """How many videos one render may make: a grid holds at most MAX_GRID_VIDEOS tiles, and
    without a grid every video is its own file and encoder process (at most MAX_FILES)."""
    high = MAX_GRID_VIDEOS if grid else MAX_FILES
    n = whole("videos", videos)
    if n > high:
        why = (
            f"a grid holds at most {high} videos ({int(math.sqrt(high))} x {int(math.sqrt(high))} tiles)"
            if grid
            else f"without a grid each video is its own file and encoder: at most {high}"
        )
        raise UsageError(f"{n} videos are too many: {why}")
    return n


def check_frame_budget(videos: int, height: int, width: int, grid: bool) -> None:
    """Refuse frames no encoder takes (wider or taller than MAX_SIDE) and time steps too big to
    hold in memory (all videos of a step are made together: at most MAX_STEP_PIXELS)."""
    rows, cols = grid_shape(videos) if grid else (1, 1)
    fh, fw = rows * height, cols * width
    pixels = videos * height * width
    if grid and max(fh, fw) > MAX_SIDE:
        raise UsageError(
            f"a grid of {videos} videos of {width}x{height} px is {fw}x{fh} px; the encoder takes at most "
            f"{MAX_SIDE} px a side: use fewer videos"
        )
    if not grid and max(height, width) > MAX_SIDE:
        raise UsageError(f"frames of {width}x{height} px are too large: the encoder takes at most {MAX_SIDE} px a side")
    if pixels > MAX_STEP_PIXELS:
        most = max(MAX_STEP_PIXELS // (height * width), 1)
        raise UsageError(
            f"{videos} videos of {width}x{height} px are {pixels / 1e6:.0f} M pixels per time step, "
            f"made and held in memory together; at most {most} videos of this size"
        )


# ----------------------------------------------------------------------------
# What is already there.


def _cause(e: OSError) -> str:
    """An OSError's cause in a few words ('no space left on device')."""
    causes = {
        errno.ENOSPC: "no space left on device",
        errno.EDQUOT: "disk quota exceeded",
        errno.EFBIG: "file too large (a file-size limit or the file system's)",
        errno.EROFS: "read-only file system",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.ENAMETOOLONG: "file name too long",
        errno.EISDIR: "it is a folder",
        errno.ENOTDIR: "a part of the path is not a folder",
        errno.EIO: "input/output error",
    }
    return causes.get(e.errno) or (e.strerror or str(e)).lower()


def write_error(path: Path, e: OSError) -> MocohdError:
    return MocohdError(f"cannot write '{path}': {_cause(e)}")


def _is_frame_file(folder: Path, name: str) -> bool:
    return bool(_FRAME.fullmatch(name)) and (folder / name).is_file() and not (folder / name).is_symlink()


def foreign_entries(folder: Path) -> list[str]:
    """Names in ``folder`` that a render may not replace. Empty for an empty folder and for a
    previous render's frame folder: the marker, NNNNNN.png files and our staging folders only."""
    names = sorted(os.listdir(folder))
    if FRAMES_MARKER not in names:
        return [n for n in names if not _STAGING.fullmatch(n)]
    return [n for n in names if n != FRAMES_MARKER and not _STAGING.fullmatch(n) and not _is_frame_file(folder, n)]


def check_output(path: Path, fmt: str) -> None:
    """Fail fast, before any work, when ``path`` cannot be written as ``fmt``: a folder where a
    file goes or the other way round, somebody's folder, a parent that is a file, no permission."""
    path = Path(path)
    here = path.parent
    while not os.path.lexists(here) and here != here.parent:
        here = here.parent
    if not here.is_dir():
        raise MocohdError(f"cannot write '{path}': '{here}' is not a folder")
    exists = os.path.lexists(path)
    if fmt == "png":
        if exists and not path.is_dir():
            raise MocohdError(f"cannot write PNG frames to '{path}': it is a file, not a folder; name another output")
        if exists:
            try:
                foreign = foreign_entries(path)
            except OSError as e:
                raise write_error(path, e) from None
            if foreign:
                shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
                raise MocohdError(
                    f"'{path}' holds files that are not a previous render's frames ({shown}): "
                    "name a new or empty folder, or remove them"
                )
            here = path
    elif exists:
        if path.is_dir():
            raise MocohdError(
                f"cannot write '{path}': it is a folder, and a video file never replaces a folder; name another output"
            )
        if not path.is_file():
            raise MocohdError(f"cannot write '{path}': it exists and is not a regular file; name another output")
    if not os.access(here, os.W_OK | os.X_OK):
        raise MocohdError(f"cannot write '{path}': permission denied in '{here}'")


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine still runs (another user's counts as running)."""
    try:
        os.kill(pid, 0)
    except PermissionError:  # another user's live process
        return True
    except (ProcessLookupError, OverflowError, ValueError):  # gone, or a number no process can have
        return False
    return True


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        try:
            p.unlink()
        except FileNotFoundError:
            pass


def sweep_stale(path: Path) -> list[Path]:
    """Remove the temporaries of renders to ``path`` whose process is gone (a SIGKILL, a crash):
    ``.STEM.partial-PID.SUFFIX`` next to it, and ``.partial-PID`` inside it when it is a frame
    folder. Only names of exactly that pattern, and only for a PID that is not running."""
    path = Path(path)
    pattern = re.compile(rf"\.{re.escape(path.stem)}\.partial-(\d+){re.escape(path.suffix)}")
    places = [(path.parent, pattern)]
    if path.is_dir():
        places.append((path, _STAGING))
    removed = []
    for folder, pat in places:
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            m = pat.fullmatch(name)
            if m and int(m.group(1)) != os.getpid() and not process_alive(int(m.group(1))):
                _remove(folder / name)
                removed.append(folder / name)
    return removed


# ----------------------------------------------------------------------------
# One output.


def ffmpeg_exe() -> str:
    return imageio_ffmpeg.get_ffmpeg_exe()


def _encoder_args(fmt: str) -> list[str]:
    if fmt == "mp4":
        return ["-vcodec", "libx264", "-pix_fmt", "yuv420p", "-crf", "25", "-movflags", "+faststart", "-f", "mp4"]
    if fmt == "webm":
        return ["-vcodec", "libvpx-vp9", "-pix_fmt", "yuv420p", "-b:v", "0", "-crf", "32", "-f", "webm"]
    # gif, with a palette made for the whole clip
    return [
        "-filter_complex",
        "split[a][b];[a]palettegen[p];[b][p]paletteuse",
        "-vcodec",
        "gif",
        "-loop",
        "0",
        "-f",
        "gif",
    ]


class VideoWriter:
    """One output (video file or PNG folder), written under a temporary name and put in place by
    ``close`` only when complete and checked; ``abort`` removes the temporary and nothing else.
    Failures raise MocohdError naming ``path`` (never the temporary) and the cause."""

    def __init__(self, path: Path, fmt: str, fps: float, size: tuple[int, int], sound: tuple[list, list] | None = None):
        self.path, self.fmt, self.size, self.fps = Path(path), fmt, size, fps
        self.count = 0
        self.installed = False
        self._proc: subprocess.Popen | None = None
        self._log: deque[str] = deque(maxlen=40)
        self._drain: threading.Thread | None = None
        self._into = fmt == "png" and self.path.is_dir()  # frames staged inside an existing folder
        if self._into:
            self.tmp = self.path / f".partial-{os.getpid()}"
        else:
            self.tmp = self.path.with_name(f".{self.path.stem}.partial-{os.getpid()}{self.path.suffix}")
        h, w = size
        # yuv420p needs even sizes: pad odd ones by one replicated row/column
        self._pad = (h % 2, w % 2) if fmt in ("mp4", "webm") else (0, 0)
        if fmt == "png":
            try:
                self.tmp.mkdir()
            except FileExistsError:  # our own PID's leftover: only a dead earlier process could have made it
                _remove(self.tmp)
                self.tmp.mkdir()
            except OSError as e:
                raise write_error(self.path, e) from None
            return
        out_h, out_w = h + self._pad[0], w + self._pad[1]
        rate = Fraction(fps).limit_denominator()
        cmd = [
            ffmpeg_exe(),
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-s",
            f"{out_w}x{out_h}",
            "-r",
            str(rate),
            "-i",
            "-",
            *(sound[0] if sound else []),
            *(sound[1] if sound else ["-an"]),
            *_encoder_args(fmt),
            str(self.tmp),
        ]
        try:
            # its own session: a Ctrl-C at the terminal reaches us, and we stop ffmpeg ourselves
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
            )
        except OSError as e:
            raise MocohdError(f"cannot start the encoder ffmpeg ({cmd[0]}): {_cause(e)}") from None
        # ffmpeg's messages are read as they come, so a chatty ffmpeg never blocks on a full pipe
        self._drain = threading.Thread(target=self._read_log, name="mocohd-ffmpeg-log", daemon=True)
        self._drain.start()

    def _read_log(self) -> None:
        for line in iter(self._proc.stderr.readline, b""):
            self._log.append(line.decode("utf-8", "replace").strip())

    def write(self, frame: np.ndarray) -> None:  # [H, W, 3] uint8
        if self.fmt == "png":
            data = iio.imwrite("<bytes>", frame, extension=".png")
            try:
                with open(self.tmp / f"{self.count:06d}.png", "wb") as f:
                    f.write(data)
            except OSError as e:
                raise write_error(self.path, e) from None
        else:
            if any(self._pad):
                frame = np.pad(frame, ((0, self._pad[0]), (0, self._pad[1]), (0, 0)), mode="edge")
            try:
                self._proc.stdin.write(memoryview(np.ascontiguousarray(frame)).cast("B"))
            except OSError:  # ffmpeg is gone (a full disk, a failure): say why
                raise self._encoder_error() from None
        self.count += 1

    def _finish_encoder(self) -> int:
        try:
            self._proc.stdin.close()
        except OSError:
            pass
        rc = self._proc.wait()
        if self._drain is not None:
            self._drain.join(timeout=10)
        return rc

    def _encoder_error(self) -> MocohdError:
        rc = self._finish_encoder()
        text = "\n".join(self._log)
        low = text.lower()
        for code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EIO):
            if os.strerror(code).lower() in low:
                return write_error(self.path, OSError(code, os.strerror(code)))
        if rc == -signal.SIGXFSZ:
            return write_error(self.path, OSError(errno.EFBIG, os.strerror(errno.EFBIG)))
        lines = [re.sub(r"^\[[^\]]*\]\s*", "", s) for s in self._log if s]
        if lines:
            why = lines[0]
        elif rc < 0:
            try:
                why = f"the encoder was stopped by {signal.Signals(-rc).name}"
            except ValueError:
                why = f"the encoder was stopped by signal {-rc}"
        else:
            why = f"the encoder failed (ffmpeg exit status {rc})"
        return MocohdError(f"cannot write '{self.path}': {why}")

    def close(self) -> None:
        """Check the output and put it in place under its name."""
        if self.count == 0:
            raise MocohdError(f"cannot write '{self.path}': no frames")
        if self.fmt == "png":
            self._install_frames()
            self.installed = True
            return
        if self._finish_encoder() != 0:
            raise self._encoder_error()
        try:
            if os.stat(self.tmp).st_size == 0:
                raise MocohdError(f"cannot write '{self.path}': the encoder wrote an empty file")
            fd = os.open(self.tmp, os.O_RDONLY)
            try:
                os.fsync(fd)  # a full disk can show only now (network and delayed-allocation file systems)
            finally:
                os.close(fd)
            if self.path.is_dir():
                raise MocohdError(
                    f"cannot write '{self.path}': it is a folder, and a video file never replaces a folder"
                )
            os.replace(self.tmp, self.path)
        except FileNotFoundError:
            raise MocohdError(f"cannot write '{self.path}': the encoder wrote no file") from None
        except OSError as e:
            raise write_error(self.path, e) from None
        self.installed = True

    def _write_marker(self, folder: Path) -> None:
        (folder / FRAMES_MARKER).write_text(_MARKER_TEXT)  # only its presence counts

    def _install_frames(self) -> None:
        try:
            if not self._into:
                self._write_marker(self.tmp)
                if os.path.lexists(self.path):  # appeared while rendering: never rename over it
                    raise MocohdError(
                        f"cannot write '{self.path}': it appeared while rendering; the frames were not kept"
                    )
                os.replace(self.tmp, self.path)
                return
            if foreign_entries(self.path):
                raise MocohdError(f"'{self.path}' got other files while rendering: the frames were not kept")
            # The marker goes while frames are replaced and comes back last: a folder cut short
            # by a kill (old and new frames mixed) is never taken for a complete render again.
            (self.path / FRAMES_MARKER).unlink(missing_ok=True)
            for k in range(self.count):
                name = f"{k:06d}.png"
                os.replace(self.tmp / name, self.path / name)  # each frame replaced whole
            for name in os.listdir(self.path):  # the previous render's frames beyond the new count
                m = _FRAME.fullmatch(name)
                if m and int(m.group(1)) >= self.count and _is_frame_file(self.path, name):
                    (self.path / name).unlink()
            self._write_marker(self.path)
            self.tmp.rmdir()
        except OSError as e:
            raise write_error(self.path, e) from None

    def kill(self) -> None:
        """Stop the encoder at once (so that a blocked write returns)."""
        if self._proc is not None and self._proc.poll() is None:
            try:
                self._proc.kill()
            except OSError:
                pass

    def abort(self) -> None:
        """Remove the temporary; the output under its own name is left as it was."""
        if self.installed:
            return
        if self._proc is not None:
            self.kill()
            try:
                self._finish_encoder()
            except Exception:  # noqa: BLE001 - cleaning up: the first failure is the one reported
                pass
        _remove(self.tmp)


# ----------------------------------------------------------------------------
# All outputs of a render.


def _outcome(writers: list[VideoWriter], paths: list[Path]) -> str:
    done = [str(w.path) for w in writers if w.installed]
    if not done:
        return "nothing written"
    rest = [str(p) for p in paths if str(p) not in done]
    return f"kept {', '.join(done)} (complete)" + (f"; not written: {', '.join(rest)}" if rest else "")


def write_videos(
    frames: Iterable,
    out: Path,
    fmt: str,
    fps: float,
    videos: int,
    grid: bool,
    on_frame: Callable[[int], None] | None = None,
    sound: tuple[list, list] | None = None,
) -> tuple[list[Path], int, tuple[int, int]]:
    """Consume [V, H, W, 3] uint8 frames (tensors or arrays) and write them, encoding in a separate
    thread. Returns (paths, frames written per video, (height, width) of a written frame).

    Every output is checked before the first frame and put in place only when complete (see the
    module's output rules). On a failure or an interrupt nothing partial is left; an interrupt
    (KeyboardInterrupt and its subclasses) carries an ``outcome`` attribute: which outputs were
    complete, for the one line the CLI prints. ``sound``: ffmpeg arguments that add an audio
    track (its input's, its output's: ``audio.mux_args``) to every video file."""
    if fmt not in FORMATS:
        raise UsageError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    fps = check_fps(fmt, fps)
    videos = check_videos(videos, grid)
    paths = output_paths(Path(out), videos, grid)
    for p in paths:
        check_output(p, fmt)
    for p in paths:
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise write_error(p, e) from None
        sweep_stale(p)
    q: queue.Queue = queue.Queue(maxsize=8)
    writers: list[VideoWriter] = []
    failure: list[BaseException] = []
    stop = threading.Event()

    def encode():
        try:
            while not stop.is_set():
                try:
                    item = q.get(timeout=0.2)
                except queue.Empty:
                    continue
                if item is None:
                    return
                if grid:
                    writers[0].write(tile(item))
                else:
                    # not strict: the first frame's video count was checked against the outputs (as before,
                    # a later frame with a different count writes as many videos as both have)
                    for wr, f in zip(writers, item, strict=False):
                        wr.write(f)
        except BaseException as e:  # noqa: BLE001 - reported to the producer
            failure.append(e)
            stop.set()

    def put(item) -> bool:  # False when the encoder has stopped
        while not stop.is_set():
            try:
                q.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    thread: threading.Thread | None = None
    count = 0
    try:
        for frame in frames:
            item = np.asarray(frame.numpy() if hasattr(frame, "numpy") else frame)
            if thread is None:
                v, h, w = item.shape[:3]
                if not grid and v != len(paths):
                    raise UsageError(f"frames hold {v} videos, but {len(paths)} outputs were asked for")
                check_frame_budget(v, h, w, grid)
                rows, cols = grid_shape(v) if grid else (1, 1)
                for p in paths:
                    writers.append(VideoWriter(p, fmt, fps, (rows * h, cols * w), sound))
                thread = threading.Thread(target=encode, name="mocohd-encoder", daemon=True)
                thread.start()
            if not put(item):
                break
            count += 1
            if on_frame:
                on_frame(count)
        if thread is None:
            raise MocohdError(f"cannot write '{paths[0]}': no frames")
        put(None)
        thread.join()
        if failure:
            raise failure[0]
        for wr in writers:
            wr.close()
        return paths, count, writers[0].size
    except BaseException as e:
        stop.set()  # the encoder stops at its next frame; a write blocked on ffmpeg fails once it is killed
        for wr in writers:
            wr.kill()
        if thread is not None:
            thread.join(timeout=30)
        for wr in writers:
            wr.abort()
        if isinstance(e, KeyboardInterrupt):
            e.outcome = _outcome(writers, paths)
        raise
