"""`mocohd studio` (``mocohd_cli.studio``): its jobs and limits directly, then its page in a real
headless browser (Debian's Chromium driven by Playwright; nothing is downloaded).

One studio serves the module's browser tests (one per worker under ``pytest -n``; no test counts on
another having run): ``python -m mocohd_cli studio`` on a free port of 127.0.0.1,
with its own store (the shipped demo models, a latent-free store and a training run made here)
and output folder, uploads limited to 1 MB, renders to 64 frames and previews to 32 px. The browser tests skip, and
say why, where Gradio (the studio extra), Playwright or Chromium is missing; `.ci/run` installs
them. ``MOCOHD_SCREENSHOTS=1`` also writes the docs' screenshots (examples/studio-*.png).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import imageio_ffmpeg
import pytest
from PIL import Image

from mocohd_cli.errors import MocohdError, UsageError
from mocohd_cli.stopping import Cancelled
from mocohd_cli.studio import RenderOptions, StudioSettings, exposure, jobs, runs as studio_runs

from .conftest import run

REPO = Path(__file__).resolve().parents[1]
SHOTS = REPO / "examples"  # docs/assets/studio-*.png link to them
PHOTO = REPO / "tests" / "data" / "astronaut.png"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MAX_FRAMES, MAX_UPLOAD_MB, PREVIEW_SIZE = 64, 1, 32
SECRET = "not for the studio's visitors"


def chromium() -> str | None:
    """Debian's Chromium (``apt-get install chromium``), or any chromium on PATH."""
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def browser_missing() -> str | None:
    """Why the browser tests cannot run here (None: they can)."""
    if importlib.util.find_spec("gradio") is None:
        return "Gradio is not installed (pip install -e '.[studio]')"
    if importlib.util.find_spec("playwright") is None:
        return "Playwright is not installed (pip install playwright; the test extra has it)"
    if chromium() is None:
        return "Chromium is not installed (apt-get install chromium; .ci/run does it as root)"
    return None


def write_run(home: Path, name: str = "heads") -> Path:
    """A motion run's folder as ``mocohd train`` leaves it: metrics.jsonl (losses every 20 steps, the
    monitor and fvd16 every 100) and sample pictures."""
    folder = home / "runs" / name
    (folder / "samples").mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"steps": 400, "name": name}))
    lines = []
    for step in range(20, 201, 20):
        t = step / 200
        lines.append(
            {
                "step": step,
                "epoch": step / 40,
                "it_s": 7.5,
                "G_video": 1.2 - 0.5 * t,
                "D_video_real": 0.4 + 0.1 * t,
                "D_video_fake": 0.5 - 0.1 * t,
                "mutual_info": -0.2 - 0.3 * t,
            }
        )
        if step % 100 == 0:
            lines.append({"step": step, "monitor": {"distance": 1.5 - 0.8 * t, "change": 0.1}})
            lines.append({"step": step, "eval": {"fvd16": 400 - 150 * t}})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    for step, picture in ((100, "demo_frames.png"), (200, "demo_strip.png")):  # frames of the demo's videos
        shutil.copy(REPO / "examples" / picture, folder / "samples" / f"step_{step:07d}.png")
    return folder


# ---------------------------------------------------------------- the jobs, without a page


def test_an_existing_render_is_never_replaced_without_replace(tmp_path):
    settings = StudioSettings(output=tmp_path / "out")
    first, note = jobs.output_file(settings, "take", "mp4")
    assert first == settings.output / "take.mp4" and note is None
    first.write_bytes(b"kept")
    second, note = jobs.output_file(settings, "take.mp4", "mp4")
    assert second.name == "take-2.mp4" and "take.mp4 exists" in note
    same, note = jobs.output_file(settings, "take", "mp4", replace=True)
    assert same == first and note is None


@pytest.mark.parametrize("name", ["../take", "a/b", "/etc/passwd", "..", "", "sub\\take", ".hidden"])
def test_output_names_with_folders_or_traversal_are_refused(tmp_path, name):
    with pytest.raises(UsageError, match="plain name"):
        jobs.output_file(StudioSettings(output=tmp_path / "out"), name, "mp4")


def test_frames_videos_and_keyframe_paths_are_limited(tmp_path):
    settings = StudioSettings(output=tmp_path / "out", max_frames=64, max_videos=4)
    with pytest.raises(UsageError, match="frames must be at most 64"):
        jobs.render_config(settings, RenderOptions(frames=65))
    with pytest.raises(UsageError, match="videos must be at most 4"):
        jobs.render_config(settings, RenderOptions(videos=5))
    with pytest.raises(UsageError, match="about 361 frames"):
        jobs.render_config(settings, RenderOptions(keyframes="1,2,3,4", seconds=10, fps=12))
    preview = jobs.render_config(settings, RenderOptions(frames=64), preview=True)
    assert (preview.frames, preview.videos, preview.grid) == (jobs.PREVIEW_FRAMES, jobs.PREVIEW_VIDEOS, True)


@pytest.mark.parametrize(
    "options",
    [
        RenderOptions(motion="../motion/demo"),
        RenderOptions(image="/tmp/generator.pkl"),
        RenderOptions(start="photos/me.jpg"),
        RenderOptions(keyframes="1, /home/me/photo.jpg"),
        RenderOptions(edits="/tmp/direction.npy=2"),
    ],
)
def test_the_page_names_models_latents_and_directions_never_paths(tmp_path, options):
    with pytest.raises(UsageError):
        jobs.render_config(StudioSettings(output=tmp_path / "out"), options)


def test_a_preview_is_a_grid_of_small_frames(tmp_path):
    settings = StudioSettings(output=tmp_path / "out", preview_size=16)
    result = jobs.preview(settings, RenderOptions(frames=3))
    assert (result.videos, result.frames, result.size) == (4, 3, (32, 32))  # 2x2 videos of 16 px
    assert video_frames(result.paths[0]) == (3, 32, 32)
    assert jobs.preview_size(StudioSettings(output=tmp_path), "demo") == 64  # the demo's own 64 px, not 128
    for bad in (48, 2, 2048):
        with pytest.raises(UsageError, match="--preview-size must be a power of two in 4..1024, got"):
            StudioSettings(output=tmp_path, preview_size=bad)


def test_stopping_one_job_leaves_another_running_and_removes_what_it_wrote(tmp_path):
    """Two pages' renders at once: the Stop of one stops its job alone; the stopped one leaves no
    file, the other writes its whole video."""
    settings = StudioSettings(output=tmp_path / "out")
    stops = jobs.StopFlags()
    both_started, stopped = threading.Barrier(3, timeout=60), threading.Event()
    outcome = {}

    def job(key):
        def on_frame(n, total):
            if n == 1:  # each job waits, its first frame made, until one of them is stopped
                both_started.wait()
                stopped.wait(timeout=60)

        try:
            with stops.running(key) as should_stop:
                assert stops.is_running(key)
                outcome[key] = jobs.render_video(
                    settings, RenderOptions(frames=24), key.split("/")[0], on_frame=on_frame, should_stop=should_stop
                )[0]
        except Cancelled as e:
            outcome[key] = e

    threads = [threading.Thread(target=job, args=(key,)) for key in ("one/render", "two/render")]
    for t in threads:
        t.start()
    both_started.wait()
    assert stops.stop("one/render") and not stops.stop("three/render")  # another page: no job, nothing stopped
    stopped.set()
    for t in threads:
        t.join(timeout=120)
    assert isinstance(outcome["one/render"], Cancelled) and "nothing written" in str(outcome["one/render"])
    assert outcome["two/render"].frames == 24 and video_frames(settings.output / "two.mp4") == (24, 64, 64)
    assert sorted(p.name for p in settings.output.iterdir() if p.is_file()) == ["two.mp4"]  # no half of one.mp4
    assert not stops.is_running("one/render") and not stops.is_running("two/render")
    with stops.running("one/render"), pytest.raises(MocohdError, match="already running"):
        with stops.running("one/render"):
            pass


def test_a_training_runs_metrics_are_read_as_series_and_a_cut_line_is_skipped(isolated_store):
    folder = write_run(isolated_store)
    with (folder / "metrics.jsonl").open("a") as f:
        f.write('{"step": 220, "G_vid')  # the trainer is writing this line
    series = studio_runs.read_metrics("heads")
    assert studio_runs.list_runs() == ["heads"]
    assert [s for s, _ in series["G_video"]] == list(range(20, 201, 20))
    assert series["monitor distance"][0] == (100, pytest.approx(1.1)) and [s for s, _ in series["fvd16"]] == [100, 200]
    assert "it_s" not in series and set(studio_runs.losses(series)) == {
        "G_video",
        "D_video_real",
        "D_video_fake",
        "mutual_info",
    }
    assert [p.name for p in studio_runs.run_samples("heads")] == ["step_0000100.png", "step_0000200.png"]


def test_listening_beyond_this_machine_says_what_it_exposes(tmp_path):
    assert exposure(StudioSettings(output=tmp_path, host="127.0.0.1")) is None
    assert exposure(StudioSettings(output=tmp_path, host="localhost")) is None
    said = exposure(StudioSettings(output=tmp_path, host="0.0.0.0", port=8000))
    assert "port 8000" in said and "no password" in said and str(tmp_path) in said


def test_studio_without_the_extra_says_how_to_install_it(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio raises ImportError
    code, out, err = run(capsys, "studio", "--port", "0", "--output", str(Path(os.environ["MOCOHD_HOME"]) / "out"))
    assert code == 1 and err.strip() == "error: mocohd studio needs the studio extra: pip install 'mocohd-cli[studio]'"


def test_studio_bad_limits_are_usage_errors(capsys, tmp_path):
    code, _, err = run(capsys, "studio", "--max-upload-mb", "0", "--output", str(tmp_path))
    assert code == 2 and err.count("\n") == 1 and "--max-upload-mb must be in (0, 10000]" in err


def test_a_port_in_use_is_one_line(capsys, monkeypatch, tmp_path):
    if importlib.util.find_spec("gradio") is None:
        pytest.skip("Gradio is not installed (pip install -e '.[studio]')")
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "cache"))  # serve sets it: restored after the test
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = run(capsys, "studio", "--port", str(port), "--output", str(tmp_path / "out"))
    assert (
        code == 1
        and err
        == f"error: cannot listen on 127.0.0.1:{port}: the port is in use (give another --port, or stop what uses it)\n"
    )


# ---------------------------------------------------------------- the page, in a browser


class Studio:
    def __init__(self, url: str, root: Path, home: Path, out: Path, process: subprocess.Popen, log: list[str]):
        self.url, self.root, self.home, self.out, self.process, self.log = url, root, home, out, process, log


def video_frames(path: Path) -> tuple[int, int, int]:
    """(frames, height, width) of a video file, decoded by ffmpeg (a file it cannot read fails)."""
    reader = imageio_ffmpeg.read_frames(str(path))
    width, height = next(reader)["size"]
    return sum(1 for _ in reader), height, width


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_studio(root: Path) -> Studio:
    """`mocohd studio` in a subprocess with its own store and output folder under ``root``, answering
    on 127.0.0.1 once this returns."""
    home, out = root / "home", root / "out"
    write_run(home)
    (root / "secret.txt").write_text(SECRET)  # beside the output folder and the store: never served
    elsewhere = {name: root / "elsewhere" / name for name in ("HOME", "TMPDIR", "XDG_CACHE_HOME")}
    for folder in elsewhere.values():  # where a library might write: checked empty when it stops
        folder.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRADIO_", "MOCOHD_", "HF_", "XDG_"))}
    env.update(
        {k: str(v) for k, v in elsewhere.items()},
        MOCOHD_HOME=str(home),
        GRADIO_ANALYTICS_ENABLED="False",
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    )
    port = _free_port()
    args = ["--port", str(port), "--output", str(out), "--max-upload-mb", str(MAX_UPLOAD_MB)]
    args += ["--preview-size", str(PREVIEW_SIZE)]
    process = subprocess.Popen(
        [sys.executable, "-m", "mocohd_cli", "studio", *args, "--max-frames", str(MAX_FRAMES)],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    log: list[str] = []
    threading.Thread(target=lambda: log.extend(process.stdout), daemon=True).start()
    deadline = time.monotonic() + 90
    while not any("mocohd studio at" in line for line in log):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail("the studio did not start:\n" + "".join(log))
        time.sleep(0.1)
    return Studio(f"http://127.0.0.1:{port}", root, home, out, process, log)


def stop_studio(studio: Studio) -> None:
    studio.process.terminate()
    try:
        studio.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        studio.process.kill()


def written_elsewhere(studio: Studio) -> list[str]:
    """Files in the studio's home, temporary and cache folders (none should be there: Gradio's cache is
    in the output folder)."""
    return sorted(str(p.relative_to(studio.root)) for p in (studio.root / "elsewhere").rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    """One studio for this module's browser tests (skips without its browser stack). Under `pytest -n`
    each worker that runs some of them has its own; when it stops, after the last of them, nothing
    may have been written outside its store and output folder."""
    why = browser_missing()
    if why:
        pytest.skip(why)
    running = start_studio(tmp_path_factory.mktemp("studio"))
    yield running
    stop_studio(running)
    assert written_elsewhere(running) == [], "the studio wrote outside its store and output folder"


@pytest.fixture(scope="module")
def browser(studio):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, studio, request, tmp_path):
    """A fresh page of the studio; ``page.outside`` collects every request that left 127.0.0.1. A
    failed test leaves a screenshot of the page and the studio's console in its report."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    p = context.new_page()
    p.set_default_timeout(60_000)
    p.outside = []
    p.on("request", lambda r: p.outside.append(r.url) if not r.url.startswith((studio.url, "data:", "blob:")) else None)
    p.goto(studio.url)
    p.wait_for_function("document.querySelector('#models')?.innerText.includes('mocogan-hd-lstm')")  # loaded
    failures = request.session.testsfailed
    yield p
    if request.session.testsfailed > failures:  # this test's call failed (its report is in)
        p.screenshot(path=str(tmp_path / "failed.png"), full_page=True)
        written = sorted(str(f.relative_to(studio.out)) for f in studio.out.rglob("*") if f.is_file())
        message = p.evaluate("document.querySelector('#message')?.innerText ?? ''")
        print(
            f"screenshot: {tmp_path / 'failed.png'}\ntoasts: {toasts(p)}\nmessage: {message!r}\n"
            f"output folder: {written}\nstudio:\n{''.join(studio.log[-40:])}"
        )
    context.close()


def screenshot(page, name: str) -> None:
    """examples/studio-NAME.png (the docs show it), when MOCOHD_SCREENSHOTS=1: CI leaves the tracked pictures alone."""
    if os.environ.get("MOCOHD_SCREENSHOTS") == "1":
        page.wait_for_timeout(300)  # let the last update paint
        path = SHOTS / f"studio-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        Image.open(path).convert("RGB").quantize(256).save(path, optimize=True)  # a third of the bytes


def pick(page, dropdown: str, option: str) -> None:
    page.locator(f"{dropdown} input").click()
    page.locator(dropdown).get_by_role("option", name=option, exact=True).click()


def fill(page, element: str, value) -> None:
    """Type ``value`` into the text or number box ``element``, then leave the box (as a person would:
    the box has its value before any button is pressed)."""
    box = page.locator(f"{element} input, {element} textarea").first
    box.fill(str(value))
    box.blur()


def toasts(page) -> str:
    return "\n".join(page.locator(".toast-body").all_inner_texts())


def test_page_lists_the_models_and_shows_info_without_leaving_this_machine(page):
    pick(page, "#model-pick", "demo (image)")
    page.wait_for_function("document.querySelector('#model-info').innerText.includes('64 x 64')")
    info = page.inner_text("#model-info")
    assert "image model demo" in info and "stylegan2" in info and "weights sha256" in info
    screenshot(page, "models")
    assert page.outside == []  # no CDN, no web fonts, no analytics


def test_preview_then_render_then_download_a_valid_video_and_never_replace_it(page, studio, tmp_path):
    page.get_by_role("tab", name="Render").click()
    pick(page, "#motion", "demo")
    pick(page, "#image", "demo")
    fill(page, "#frames", "12")
    fill(page, "#seed", "3")
    page.click("#preview")
    page.wait_for_function("document.querySelector('#message').innerText.includes('preview:')")
    assert f"4 video(s) of 12 frames, {2 * PREVIEW_SIZE}x{2 * PREVIEW_SIZE}" in page.inner_text("#message")
    assert video_frames(studio.out / "previews" / "preview.mp4") == (12, 2 * PREVIEW_SIZE, 2 * PREVIEW_SIZE)
    fill(page, "#file-name", "take")
    page.click("#render")
    page.wait_for_selector("#download a")
    assert "wrote take.mp4 in the output folder: 1 video(s) of 12 frames, 64x64" in page.inner_text("#message")
    with page.expect_download() as download:
        page.locator("#download a").first.click()
    got = tmp_path / download.value.suggested_filename
    download.value.save_as(got)
    assert got.name == "take.mp4" and video_frames(got) == (12, 64, 64)
    assert got.read_bytes() == (studio.out / "take.mp4").read_bytes()
    screenshot(page, "render")

    kept = (studio.out / "take.mp4").read_bytes()
    page.click("#render")  # the same name again: a new file
    page.wait_for_function("document.querySelector('#message').innerText.includes('take-2.mp4')")
    assert "take.mp4 exists: wrote take-2.mp4" in page.inner_text("#message")
    assert (studio.out / "take.mp4").read_bytes() == kept
    assert page.outside == []


def test_a_photo_becomes_a_stored_latent_and_then_a_video(page, studio):
    page.get_by_role("tab", name="Photo").click()
    page.locator("#photo input[type=file]").set_input_files(str(PHOTO))
    page.wait_for_function("document.querySelector('#photo').innerText.includes('astronaut')")  # uploaded
    fill(page, "#steps", "8")
    page.get_by_label("pixel").check()  # no VGG16 in the test store
    page.click("#invert")
    page.wait_for_function("document.querySelector('#latent').innerText.includes('stored latent')")
    assert "stored latent astronaut: distance" in page.inner_text("#latent")
    assert (studio.home / "latent" / "astronaut.safetensors").is_file()
    fill(page, "#photo-frames", "8")
    page.click("#animate")
    page.wait_for_selector("#animated-download a")
    assert video_frames(studio.out / "astronaut.mp4") == (8, 64, 64)
    screenshot(page, "photo")


def test_stop_ends_an_inversion_early_and_keeps_the_best_latent(page, studio):
    page.get_by_role("tab", name="Photo").click()
    page.locator("#photo input[type=file]").set_input_files(str(PHOTO))
    page.wait_for_function("document.querySelector('#photo').innerText.includes('astronaut')")  # uploaded
    fill(page, "#latent-name", "stopped")
    fill(page, "#steps", "10000")
    page.get_by_label("pixel").check()
    page.click("#invert")
    page.wait_for_selector("#latent >> text=inverting", timeout=30_000)  # the progress bar runs
    page.click("#stop")
    page.wait_for_function("document.querySelector('#latent').innerText.includes('stored latent')")
    text = page.inner_text("#latent")
    assert "stored latent stopped (stopped early" in text and (studio.home / "latent" / "stopped.safetensors").is_file()


def test_cancel_stops_a_render_and_leaves_no_file(page, studio):
    page.get_by_role("tab", name="Render").click()
    fill(page, "#frames", str(MAX_FRAMES))
    fill(page, "#videos", "16")
    fill(page, "#file-name", "cancelled")
    page.click("#render")
    page.wait_for_selector("#message >> text=rendering", timeout=30_000)  # the progress bar runs
    page.click("#cancel")
    page.wait_for_function("document.querySelector('#message').innerText.includes('cancelled: nothing written')")
    assert not any(studio.out.glob("cancelled*"))
    page.click("#cancel")  # nothing of this page is running now
    page.wait_for_function("document.querySelector('#message').innerText.includes('nothing to cancel')")


def test_a_training_runs_metrics_and_samples_are_shown_and_follow_the_run(page, studio):
    page.get_by_role("tab", name="Training").click()
    pick(page, "#run", "heads")
    page.wait_for_function("document.querySelector('#run-text').innerText.includes('step 200')")
    text = page.inner_text("#run-text")
    assert "2 sample(s)" in text and "monitor distance 0.7" in text and "fvd16 250" in text
    page.wait_for_selector("#loss-plot canvas, #loss-plot svg")
    assert page.locator("#samples img").count() == 2
    page.wait_for_function("[...document.querySelectorAll('#samples img')].every(i => i.complete && i.naturalWidth)")
    screenshot(page, "training")
    with (studio.home / "runs" / "heads" / "metrics.jsonl").open("a") as f:  # the run goes on
        f.write(json.dumps({"step": 220, "G_video": 0.6}) + "\n")
    page.wait_for_function("document.querySelector('#run-text').innerText.includes('step 220')", timeout=15_000)


def test_errors_are_one_line_messages_on_the_page(page, studio):
    page.get_by_role("tab", name="Render").click()
    fill(page, "#frames", str(MAX_FRAMES + 1))
    page.click("#render")
    page.wait_for_selector(".toast-body")
    assert f"frames must be at most {MAX_FRAMES} here" in toasts(page)
    fill(page, "#frames", "4")
    fill(page, "#file-name", "../outside")
    page.click("#render")
    page.wait_for_function("[...document.querySelectorAll('.toast-body')].some(t => t.innerText.includes('plain'))")
    assert "Traceback" not in page.content() and not (studio.root / "outside.mp4").exists()


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_files_outside_the_output_folder_and_the_runs_are_refused(studio):
    (studio.out / "served.txt").write_text("a render")
    assert _get(f"{studio.url}/gradio_api/file={studio.out}/served.txt") == (200, b"a render")  # the route works
    secret = studio.root / "secret.txt"
    attempts = [
        f"file={secret}",
        f"file={studio.out}/../secret.txt",
        f"file={studio.out}/%2e%2e/secret.txt",
        "file=secret.txt",  # the studio's working folder
        "file=../secret.txt",
        f"file={studio.home}/runs/../../secret.txt",
        f"file={studio.home}/latent/astronaut.safetensors",  # the store beyond the runs
        "file=/etc/passwd",
        "file=%2Fetc%2Fpasswd",
    ]
    for attempt in attempts:
        status, body = _get(f"{studio.url}/gradio_api/{attempt}")
        assert status in (403, 404) and SECRET.encode() not in body and b"root:" not in body, attempt


def test_an_oversized_upload_is_refused(page, studio):
    big = studio.root / "big.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * (MAX_UPLOAD_MB * 1024 * 1024 + 1))
    cached = sorted(p.name for p in (studio.out / jobs.CACHE).rglob("big.png"))
    page.get_by_role("tab", name="Photo").click()
    page.locator("#photo input[type=file]").set_input_files(str(big))
    page.wait_for_selector(".toast-body")
    assert "maximum allowed size" in toasts(page)
    # and straight to the server, past the page's own check
    boundary = "studio-test"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="big.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + big.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        f"{studio.url}/gradio_api/upload",
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        method="POST",
    )
    try:
        status = urllib.request.urlopen(request, timeout=20).status
    except urllib.error.HTTPError as e:
        status = e.code
    assert status == 413
    assert sorted(p.name for p in (studio.out / jobs.CACHE).rglob("big.png")) == cached


def test_sigterm_stops_the_studio_with_one_line_and_nothing_written_elsewhere(tmp_path):
    """SIGTERM (as Ctrl-C) stops a studio with one line and the CLI's exit code; a photo uploaded to it
    went to its output folder, and nothing to its home, temporary or cache folders."""
    why = browser_missing()
    if why:
        pytest.skip(why)
    studio = start_studio(tmp_path)
    try:
        request = urllib.request.Request(
            f"{studio.url}/gradio_api/upload",
            data=(
                b'--b\r\nContent-Disposition: form-data; name="files"; filename="astronaut.png"\r\n'
                b"Content-Type: image/png\r\n\r\n" + PHOTO.read_bytes() + b"\r\n--b--\r\n"
            ),
            headers={"Content-Type": "multipart/form-data; boundary=b"},
            method="POST",
        )
        assert urllib.request.urlopen(request, timeout=20).status == 200
        studio.process.terminate()
        assert studio.process.wait(timeout=30) == 143
    finally:
        stop_studio(studio)
    time.sleep(0.2)  # the reader thread takes the last line
    assert studio.log[-1] == "terminated: the studio stopped\n", studio.log[-3:]
    assert any((studio.out / jobs.CACHE).rglob("astronaut.png")) and written_elsewhere(studio) == []
