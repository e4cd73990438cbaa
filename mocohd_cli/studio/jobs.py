"""What the studio's buttons do, without the page: every job checks the page's values against the
studio's limits, then calls the library function the command line calls (``render.render`` with a
``RenderConfig``, ``invert.invert_and_store``, ``loaders.listing``), writing only into the output
folder and the store.

    settings = StudioSettings(output=Path("studio-output"))
    options = RenderOptions(motion="demo", image="demo", frames=16, seed=3)
    clip = preview(settings, options)                       # a 2x2 grid of small frames, in a few seconds
    done = render_video(settings, options, "take1.mp4")     # never over an existing file unless replace=True

    stops = StopFlags()                                     # one flag per job: a page's Stop stops its own job
    with stops.running("page-1/render") as should_stop:     # stops.stop("page-1/render") from another thread
        render_video(settings, options, "take2", should_stop=should_stop)   # stopping.Cancelled: nothing written

The limits: frames per video (``max_frames``), videos per render (``max_videos``), the size of an
upload (``max_upload_mb``; the server refuses a larger one, ``check_upload`` checks again) and
names: models, latents and keyframes are store names or seeds, never paths, and an output file
is a bare file name inside the output folder.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .. import store
from ..edits import parse_edit
from ..errors import MocohdError, UsageError
from ..formats.canonical import read_header
from ..frames import check_size
from ..invert import StoredLatent, invert_and_store
from ..loaders.catalog import describe
from ..loaders.latents import default_name, free_name
from ..loaders.listing import ListedModel, info_rows, listed_models, resolves
from ..paths import KeyframePath
from ..render import RenderConfig, RenderResult, render

FORMATS = ("mp4", "webm", "gif")  # one file the page can show and offer (PNG folders: the command line)
PREVIEW_FRAMES = 16  # motion steps of a preview
PREVIEW_VIDEOS = 4  # a 2x2 grid
PREVIEW_SIZE = 128  # px a side of each preview video (at most; a smaller generator's own resolution)
PREVIEWS = "previews"  # the output folder's sub-folder of previews (each replaces the last)
CACHE = ".studio-cache"  # the output folder's sub-folder where the page keeps uploads and the files it serves
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,127}$")
_SEED = re.compile(r"^\d{1,13}$")


@dataclass
class StudioSettings:
    """Where the studio writes and what it allows (``mocohd studio``'s options)."""

    output: Path = Path("studio-output")  # renders, previews and the page's cache; nothing is written elsewhere
    host: str = "127.0.0.1"
    port: int = 7860
    max_upload_mb: float = 20.0  # photos and music
    max_frames: int = 1024  # motion steps per video
    max_videos: int = 16
    preview_size: int = PREVIEW_SIZE  # px a side of each video of a preview

    def __post_init__(self):
        self.output = Path(self.output).expanduser().absolute()
        if not 0 < self.max_upload_mb <= 10_000:
            raise UsageError(f"--max-upload-mb must be in (0, 10000], got {self.max_upload_mb:g}")
        if not 1 <= self.max_frames <= 1_000_000:
            raise UsageError(f"--max-frames must be in 1..1000000, got {self.max_frames}")
        if not 1 <= self.max_videos <= 1024:
            raise UsageError(f"--max-videos must be in 1..1024, got {self.max_videos}")
        self.preview_size = check_size(self.preview_size, name="--preview-size", top=1024) or PREVIEW_SIZE
        if not 0 <= self.port <= 65535:
            raise UsageError(f"--port must be in 0..65535, got {self.port}")

    def prepare(self) -> Path:
        """The output folder, created if needed (a MocohdError if it cannot be)."""
        try:
            (self.output / CACHE).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise MocohdError(f"cannot create the output folder {self.output}: {e.strerror}") from e
        return self.output

    @property
    def served(self) -> list[Path]:
        """The folders the page may serve files from: the output folder and the store's training runs."""
        return [self.output, store.home() / "runs"]


@dataclass
class RenderOptions:
    """The render options of the page, as it gives them (strings where a person types)."""

    motion: str = "demo"
    image: str = "demo"
    seed: int = 0
    truncation: float = 1.0
    frames: int = 32
    videos: int = 1
    fps: float = 12.0
    loop: bool = False
    start: str = ""  # a stored latent (``mocohd invert``, the photo tab)
    keyframes: str = ""  # seeds or stored latents, comma-separated
    seconds: float = 1.0  # from keyframe to keyframe
    edits: str = ""  # pca:K=S, sefa:K=S, comma-separated
    audio: str | None = None  # an uploaded file
    fmt: str = "mp4"


def usable_models(kind: str) -> list[str]:
    """The names of ``kind`` a render can use now: shipped, fetched or made (not those still on the Hub)."""
    names = []
    for m in listed_models():
        if m.kind == kind and m.name not in names and resolves(m.name, kind):
            names.append(m.name)
    return names


def model_table() -> list[ListedModel]:
    """``mocohd list``'s models."""
    return listed_models()


def model_info(name: str, kind: str) -> list[tuple[str, str]]:
    """``mocohd info NAME --kind KIND``'s rows (a store name, never a path)."""
    return info_rows(describe(check_store_name(name, "model"), kind=kind))


def check_store_name(name: str, what: str) -> str:
    """``name`` if it is a store name (letters, digits, '.', '_', '-'): the page reads no paths."""
    name = (name or "").strip()
    if not store.NAME_RE.match(name):
        raise UsageError(f"{what} must be a name from the lists (letters, digits, '.', '_', '-'), got {name!r}")
    return name


def render_config(settings: StudioSettings, o: RenderOptions, preview: bool = False) -> RenderConfig:
    """The page's options as the ``RenderConfig`` the command line would build, within the limits."""
    frames, videos = _whole("frames", o.frames), _whole("videos", o.videos)
    if frames > settings.max_frames:
        raise UsageError(
            f"frames must be at most {settings.max_frames} here (mocohd studio --max-frames), got {frames}"
        )
    if videos > settings.max_videos:
        raise UsageError(
            f"videos must be at most {settings.max_videos} here (mocohd studio --max-videos), got {videos}"
        )
    if preview:
        frames, videos = min(frames, PREVIEW_FRAMES), PREVIEW_VIDEOS
    fmt = o.fmt if o.fmt in FORMATS else None
    if fmt is None:
        raise UsageError(f"format must be one of {', '.join(FORMATS)}, got {o.fmt!r}")
    config = dict(
        motion=check_store_name(o.motion, "the motion model"),
        image=check_store_name(o.image, "the image generator"),
        seed=_whole("seed", o.seed, 0),
        truncation=float(o.truncation),
        videos=videos,
        grid=videos > 1,  # one file to show and offer
        fps=float(o.fps),
        loop=bool(o.loop),
        fmt=fmt,
    )
    if o.start.strip():
        config["start"] = [check_store_name(o.start, "the start latent")]
    if o.edits.strip():
        config["edits"] = [_direction(e) for e in o.edits.split(",") if e.strip()]
    if o.audio:
        config["audio"] = o.audio
    keys = [k.strip() for k in o.keyframes.split(",") if k.strip()]
    if keys:
        for k in keys:
            if not _SEED.match(k):
                check_store_name(k, "a keyframe (a seed or a stored latent)")
        path = KeyframePath(keys=keys, seconds=float(o.seconds), motion_weight=1.0)
        steps = round(path.seconds * float(o.fps))
        total = (len(keys) - (0 if o.loop else 1)) * steps + 1
        if total > settings.max_frames:
            raise UsageError(
                f"the keyframe path makes about {total} frames, more than {settings.max_frames} (mocohd studio "
                "--max-frames): fewer keyframes or seconds"
            )
        config["keyframes"] = path
    else:
        config["frames"] = frames
    return RenderConfig(**config)


def _whole(name: str, value, low: int = 1) -> int:
    try:
        n = int(value)
        if n != float(value):
            raise ValueError
    except (TypeError, ValueError):
        raise UsageError(f"{name} must be a whole number, got {value!r}") from None
    if n < low:
        raise UsageError(f"{name} must be at least {low}, got {n}")
    return n


def _direction(spec: str) -> str:
    """An edit of the page: pca:K=S or sefa:K=S (direction files: the command line)."""
    edit = parse_edit(spec.strip())
    if not str(edit.direction).startswith(("pca:", "sefa:")):
        raise UsageError(f"edits here are pca:K=S or sefa:K=S, got {spec.strip()!r}")
    return spec.strip()


def output_file(settings: StudioSettings, name: str, fmt: str, replace: bool = False) -> tuple[Path, str | None]:
    """Where a render named ``name`` goes: a file of the output folder, with the format's suffix.
    An existing file is replaced only with ``replace``; otherwise the first free NAME-2, NAME-3, ...
    is taken and the note says so."""
    stem = (name or "").strip()
    for suffix in (f".{f}" for f in FORMATS):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    if not _FILE_NAME.match(stem) or stem in (".", ".."):
        raise UsageError(
            f"the file name must be a plain name (letters, digits, spaces, '.', '_', '-'; no folders), got {name!r}"
        )
    folder = settings.prepare()
    path = folder / f"{stem}.{fmt}"
    if replace or not path.exists():
        return path, None
    k = 2
    while (folder / f"{stem}-{k}.{fmt}").exists():
        k += 1
    free = folder / f"{stem}-{k}.{fmt}"
    return free, f"{path.name} exists: wrote {free.name} (tick 'replace' to write over it)"


def preview_size(settings: StudioSettings, image: str) -> int | None:
    """The side of a preview's videos with generator ``image``: ``settings.preview_size``, or the
    generator's resolution when smaller (None, full size, when its file does not say it)."""
    try:
        path = store.resolve(check_store_name(image, "the image generator"), "image").path
        resolution = int(read_header(path).config["resolution"])
    except (MocohdError, KeyError, TypeError, ValueError):
        return None
    return min(settings.preview_size, resolution)


def preview(
    settings: StudioSettings,
    o: RenderOptions,
    on_frame: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RenderResult:
    """A short grid of four videos of these options (at most ``PREVIEW_FRAMES`` steps, frames of
    ``preview_size`` px: StyleGAN2 stops its synthesis early), in the output folder's
    ``previews/`` (each preview replaces the last of its format)."""
    config = render_config(settings, o, preview=True)
    config.size = preview_size(settings, config.image)
    folder = settings.prepare() / PREVIEWS
    return _render(folder / f"preview.{config.fmt}", config, on_frame, should_stop)


def render_video(
    settings: StudioSettings,
    o: RenderOptions,
    name: str,
    replace: bool = False,
    on_frame: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[RenderResult, str | None]:
    """The full video of these options, as ``name`` in the output folder (``output_file``);
    returns what ``render.render`` returns and the note of a name that was taken. Once
    ``should_stop()`` says True it raises ``stopping.Cancelled``, leaving no file behind."""
    config = render_config(settings, o)
    path, note = output_file(settings, name, config.fmt, replace)
    return _render(path, config, on_frame, should_stop), note


def _render(
    path: Path,
    config: RenderConfig,
    on_frame: Callable[[int, int], None] | None,
    should_stop: Callable[[], bool] | None = None,
) -> RenderResult:
    total = [0]

    def started(n, note):
        total[0] = n

    def advanced(n):
        if on_frame is not None:
            on_frame(n, total[0])

    return render(path, config, on_start=started, on_frame=advanced, should_stop=should_stop)


class StopFlags:
    """The stop flags of the jobs that are running, one per job key (the studio's keys: a page's own
    id and what it runs, e.g. "3f2c.../render"): a Stop on one page sets only its own job's flag, so
    it never stops another page's job. Thread-safe: jobs run in Gradio's worker threads."""

    def __init__(self):
        self._flags: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    @contextmanager
    def running(self, key: str) -> Iterator[Callable[[], bool]]:
        """While the job ``key`` runs: its ``should_stop`` (a fresh flag, down; a second job of the
        same key at once is a MocohdError). The flag is dropped when the job ends."""
        flag = threading.Event()
        with self._lock:
            if key in self._flags:
                raise MocohdError("this page is already running that job: wait for it, or stop it")
            self._flags[key] = flag
        try:
            yield flag.is_set
        finally:
            with self._lock:
                self._flags.pop(key, None)

    def stop(self, key: str) -> bool:
        """Ask the job ``key`` to stop; False when no such job is running."""
        with self._lock:
            flag = self._flags.get(key)
        if flag is None:
            return False
        flag.set()
        return True

    def is_running(self, key: str) -> bool:
        with self._lock:
            return key in self._flags


def check_upload(settings: StudioSettings, path: str | Path | None, what: str) -> Path:
    """An uploaded file the page received: present, and within ``max_upload_mb``."""
    if not path:
        raise UsageError(f"upload {what} first")
    p = Path(path)
    if not p.is_file():
        raise MocohdError(f"the uploaded {what} is gone; upload it again")
    if p.stat().st_size > settings.max_upload_mb * 1024 * 1024:
        raise UsageError(f"the {what} is larger than {settings.max_upload_mb:g} MB (mocohd studio --max-upload-mb)")
    return p


def invert_photo(
    settings: StudioSettings,
    photo: str | Path | None,
    image: str,
    name: str = "",
    steps: int = 1000,
    loss: str = "perceptual",
    align: bool | None = None,
    progress: Callable[[int, int, float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> StoredLatent:
    """The latent of an uploaded photo, stored in the store as ``name`` (default: the photo's
    name; a taken name gets NAME-2, ...: nothing stored is replaced), as `mocohd invert` does."""
    photo = check_upload(settings, photo, "a photo")
    steps = _whole("steps", steps)
    if steps > 10_000:
        raise UsageError(f"steps must be at most 10000 here, got {steps}")
    wanted = check_store_name(name, "the latent's name") if (name or "").strip() else None

    def advanced(done, total, dist):
        if progress is not None:
            progress(done, total, float(dist.mean()))

    return invert_and_store(
        [photo],
        image=check_store_name(image, "the image generator"),
        name=free_name(wanted or default_name(photo)),
        steps=steps,
        loss=loss,
        align=align,
        progress=advanced,
        should_stop=should_stop,
    )
