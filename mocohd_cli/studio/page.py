"""The studio's page, built with Gradio (the ``studio`` extra): four tabs over ``jobs`` and ``runs``.

    serve(StudioSettings(output=Path("studio-output")))     # what `mocohd studio` runs; Ctrl-C stops it

Models (``mocohd list`` and ``info``), Render (a low-resolution preview, then render and download,
with a Cancel button), Photo (upload, invert with progress and a Stop button, animate) and Training
(a run's metrics and samples, read-only, refreshed while it trains). Every handler turns a failure
into a message on the page. Each open page has its own id (a ``gr.State``): its Stop and Cancel
stop only its own jobs (``jobs.StopFlags``), never another page's.

Gradio is imported when the page is built, so the base install runs without it; nothing is fetched
at run time (no analytics, no share link, no web fonts: Gradio serves its page from its wheel).
Its cache (uploads, the copies of the files it serves) lives in the output folder, and it serves
files only from the output folder and the store's training runs.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
import sys
import time
import traceback
import uuid
from collections.abc import Callable

from .. import store
from ..errors import MocohdError
from ..loaders.vgg16 import have_vgg16
from ..stopping import Cancelled
from . import jobs, runs
from .jobs import CACHE, FORMATS, RenderOptions, StudioSettings

STUDIO_MISSING = "mocohd studio needs the studio extra: pip install 'mocohd-cli[studio]'"
ALIGN = {"auto (faces for face generators)": None, "on": True, "off": False}
CANCELLED = "cancelled: nothing written"
LIVE_SECONDS = 3.0  # how often the Training tab re-reads a run while 'live' is ticked
# what Gradio's page template links on the Internet: an iframe-resizer script on a CDN (for pages embedded
# in other sites) and preconnects to Google Fonts; the page works without them and the studio removes them
_REMOTE = re.compile(rb'<script[^>]*\ssrc="https?://[^"]*"[^>]*>\s*</script>|<link[^>]*\shref="https?://[^"]*"[^>]*>')


def _gradio():
    """Gradio, imported with its analytics off (a MocohdError saying how to install it without it)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio
    except ImportError:
        raise MocohdError(STUDIO_MISSING) from None
    return gradio


def exposure(settings: StudioSettings) -> str | None:
    """What listening on ``settings.host`` exposes, when it is more than this machine (None for loopback)."""
    try:
        loopback = ipaddress.ip_address(settings.host).is_loopback
    except ValueError:
        loopback = settings.host == "localhost"
    if loopback:
        return None
    return (
        f"listening on {settings.host}: anyone who can reach this machine on port {settings.port} can use the "
        f"studio, with no password: see your models, render with them (CPU/GPU time), upload photos and music, "
        f"and download every file of {settings.output} and the samples of your training runs"
    )


def serve(settings: StudioSettings, on_ready: Callable[[str], None] | None = None, block: bool = True):
    """Build the page and serve it on ``settings.host:port`` until Ctrl-C (``block``; else return
    the running Blocks). ``on_ready(url)`` once it answers."""
    gr = _gradio()
    settings.prepare()
    os.environ["GRADIO_TEMP_DIR"] = str(settings.output / CACHE)  # uploads and served copies stay in the output
    app = build_page(settings)
    from starlette.middleware import Middleware  # Gradio's own web framework

    try:
        app.queue(default_concurrency_limit=1).launch(
            app_kwargs={"middleware": [Middleware(PageGuard)]},
            server_name=settings.host,
            server_port=settings.port,
            share=False,
            inbrowser=False,
            quiet=True,
            footer_links=["gradio", "settings"],  # no link to the API page
            theme=_theme(gr),
            show_error=False,
            ssr_mode=False,
            allowed_paths=[str(p) for p in settings.served],
            max_file_size=int(settings.max_upload_mb * 1024 * 1024),
            prevent_thread_lock=True,
        )
    except OSError as e:  # Gradio's message for a taken port names its own settings: say ours
        why = "the port is in use" if "empty port" in str(e) else (e.strerror or str(e))
        raise MocohdError(
            f"cannot listen on {settings.host}:{settings.port}: {why} (give another --port, or stop what uses it)"
        ) from None
    url = f"http://{settings.host if ':' not in settings.host else f'[{settings.host}]'}:{app.server_port}"
    if on_ready is not None:
        on_ready(url)
    if not block:
        return app
    try:
        while True:  # Gradio's own wait would swallow Ctrl-C and SIGTERM: the command line says them
            time.sleep(0.5)
    except KeyboardInterrupt as e:
        e.outcome = "the studio stopped"
        raise
    finally:
        app.close(verbose=False)


class PageGuard:
    """ASGI middleware around Gradio's app: its HTML pages without the links to the Internet of its
    template (``_REMOTE``), and a one-line answer instead of a traceback when a route fails (Gradio
    runs its app in debug mode, whose error page is a traceback)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, held, html = {}, [], False

        async def relay(message):
            nonlocal html
            if message["type"] == "http.response.start":
                started.update(message)
                headers = dict(message.get("headers") or [])
                html = headers.get(b"content-type", b"").startswith(b"text/html") and b"content-encoding" not in headers
                if not html:
                    await send(message)
                return
            if message["type"] == "http.response.body" and html:
                held.append(message.get("body", b""))
                if message.get("more_body"):
                    return
                body = _REMOTE.sub(b"", b"".join(held))
                headers = [(k, v) for k, v in started.get("headers", []) if k.lower() != b"content-length"]
                await send({**started, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        try:
            await self.app(scope, receive, relay)
        except Exception as e:  # a failed route answers one line, never a traceback
            if started:
                raise
            if os.environ.get("MOCOHD_DEBUG", "") not in ("", "0"):
                traceback.print_exc(file=sys.stderr)
            text = f"error: {type(e).__name__} (MOCOHD_DEBUG=1 prints the traceback on the studio's console)".encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"text/plain; charset=utf-8"),
                        (b"content-length", str(len(text)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": text})


def _theme(gr):
    """Gradio's default theme with the system's fonts (its own would be fetched from the Internet)."""
    return gr.themes.Default(
        font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "Consolas", "monospace"]
    )


def _on_page(gr, fn):
    """``fn`` with every failure shown on the page as one line (``gr.Error``), never a traceback;
    ``MOCOHD_DEBUG=1`` also prints the traceback of an unexpected one on the server's console."""

    @functools.wraps(fn)
    def wrapped(*args, **kw):
        try:
            return fn(*args, **kw)
        except gr.Error:
            raise
        except MocohdError as e:
            raise gr.Error(str(e), print_exception=False) from None
        except Exception as e:  # noqa: BLE001 - a page shows every failure as one line
            if os.environ.get("MOCOHD_DEBUG", "") not in ("", "0"):
                traceback.print_exc(file=sys.stderr)
            raise gr.Error(f"{type(e).__name__}: {e}", print_exception=False) from None

    return wrapped


def build_page(settings: StudioSettings):
    """The studio's Gradio ``Blocks`` (not yet launched)."""
    gr = _gradio()
    import pandas as pd  # Gradio's own dependency: its plots take data frames

    safe = functools.partial(_on_page, gr)
    stops = jobs.StopFlags()  # by job: "PAGE/render" (preview or render), "PAGE/invert"

    def model_choices(kind):
        return jobs.usable_models(kind)

    with gr.Blocks(title="mocohd studio", analytics_enabled=False) as page:
        page_id = gr.State(lambda: uuid.uuid4().hex)  # drawn for each page as it loads: whose jobs are whose
        gr.Markdown(
            f"# mocohd studio\nStore `{store.home()}` · output folder `{settings.output}` · "
            f"at most {settings.max_frames} frames, {settings.max_videos} videos, uploads of "
            f"{settings.max_upload_mb:g} MB"
        )

        # ------------------------------------------------------------------ Models
        with gr.Tab("Models", id="models"):
            table = gr.Dataframe(
                headers=["name", "kind", "family", "res", "where", "detail"], interactive=False, elem_id="models"
            )
            with gr.Row():
                picked = gr.Dropdown(label="Model", choices=[], elem_id="model-pick")
                refresh = gr.Button("Refresh", scale=0)
            info = gr.Markdown(elem_id="model-info")

        def list_models():
            rows = jobs.model_table()
            frame = [
                [m.name, m.kind, m.family, m.resolution, m.where, " · ".join(d for d in m.detail if d)] for m in rows
            ]
            choices = [(f"{m.name} ({m.kind})", f"{m.kind}/{m.name}") for m in rows]
            return frame, gr.Dropdown(choices=choices, value=None)

        def show_info(choice):
            if not choice:
                return ""
            kind, name = choice.split("/", 1)
            lines = [f"### {kind} model {name}", "", "| | |", "|---|---|"]
            lines += [f"| {k} | {str(v).replace('|', '/')} |" for k, v in jobs.model_info(name, kind)]
            return "\n".join(lines)

        # ------------------------------------------------------------------ Render
        with gr.Tab("Render", id="render"):
            with gr.Row():
                motion = gr.Dropdown(
                    label="Motion model", choices=model_choices("motion"), value="demo", elem_id="motion"
                )
                image = gr.Dropdown(
                    label="Image generator", choices=model_choices("image"), value="demo", elem_id="image"
                )
                start = gr.Dropdown(
                    label="Start from latent", choices=["", *model_choices("latent")], value="", elem_id="start"
                )
            with gr.Row():
                seed = gr.Number(label="Seed", value=0, precision=0, minimum=0, elem_id="seed")
                truncation = gr.Slider(label="Truncation psi", minimum=0, maximum=1.5, value=1.0, step=0.05)
                frames = gr.Number(label="Frames", value=32, precision=0, minimum=1, elem_id="frames")
                videos = gr.Number(label="Videos (a grid)", value=1, precision=0, minimum=1, elem_id="videos")
                fps = gr.Number(label="FPS", value=12, minimum=1, maximum=60)
                loop = gr.Checkbox(label="Loop", value=False, elem_id="loop")
            with gr.Row():
                keyframes = gr.Textbox(label="Keyframes (seeds or latents, comma-separated)", elem_id="keyframes")
                seconds = gr.Number(label="Seconds per keyframe", value=1.0, minimum=0.1)
                edits = gr.Textbox(label="Edits (pca:K=S, sefa:K=S)", placeholder="pca:0=2, sefa:1=-1", elem_id="edits")
                audio = gr.File(label="Music (optional)", file_types=["audio"], type="filepath", elem_id="audio")
            with gr.Row():
                preview_button = gr.Button("Preview", variant="secondary", elem_id="preview")
                fmt = gr.Radio(label="Format", choices=list(FORMATS), value="mp4")
                name = gr.Textbox(label="File name", value="render", elem_id="file-name")
                replace = gr.Checkbox(label="Replace an existing file", value=False, elem_id="replace")
                render_button = gr.Button("Render", variant="primary", elem_id="render")
                cancel_button = gr.Button("Cancel", variant="stop", elem_id="cancel", scale=0)
            message = gr.Markdown(elem_id="message")
            with gr.Row():
                preview_video = gr.Video(
                    label="Preview", autoplay=True, loop=True, interactive=False, elem_id="preview-video"
                )
                rendered = gr.Video(label="Video", interactive=False, elem_id="video")
                download = gr.File(label="Download", interactive=False, elem_id="download")

        options = {
            page_id,
            motion,
            image,
            start,
            seed,
            truncation,
            frames,
            videos,
            fps,
            loop,
            keyframes,
            seconds,
            edits,
            audio,
            fmt,
        }

        def read_options(v: dict) -> RenderOptions:  # the Render tab's values, by component
            if v[audio]:
                jobs.check_upload(settings, v[audio], "music")
            return RenderOptions(
                motion=v[motion] or "",
                image=v[image] or "",
                start=v[start] or "",
                seed=v[seed] if v[seed] is not None else 0,
                truncation=v[truncation],
                frames=v[frames] if v[frames] is not None else 0,
                videos=v[videos] if v[videos] is not None else 0,
                fps=v[fps] or 12,
                loop=v[loop],
                keyframes=v[keyframes] or "",
                seconds=v[seconds] or 1.0,
                edits=v[edits] or "",
                audio=v[audio],
                fmt=v[fmt] or "mp4",
            )

        def frame_progress(progress, what):
            return lambda n, total: progress((n, total or None), desc=what, unit="frames")

        def do_preview(values, progress=gr.Progress()):  # noqa: B008 - Gradio finds its progress bar by this default
            o = read_options(values)
            try:
                with stops.running(f"{values[page_id]}/render") as should_stop:
                    result = jobs.preview(settings, o, frame_progress(progress, "preview"), should_stop)
            except Cancelled:
                return gr.skip(), CANCELLED
            return str(result.paths[0]), _described(result, "preview")

        def do_render(values, progress=gr.Progress()):  # noqa: B008 - as above
            o = read_options(values)
            try:
                with stops.running(f"{values[page_id]}/render") as should_stop:
                    result, note = jobs.render_video(
                        settings, o, values[name], values[replace], frame_progress(progress, "rendering"), should_stop
                    )
            except Cancelled:
                return gr.skip(), gr.skip(), CANCELLED
            path = str(result.paths[0])
            text = _described(result, f"wrote `{result.paths[0].name}` in the output folder") + (
                f"\n\n{note}" if note else ""
            )
            return path, path, text

        # ------------------------------------------------------------------ Photo
        with gr.Tab("Photo", id="photo"):
            with gr.Row():
                photo = gr.File(label="Photo", file_types=["image"], type="filepath", elem_id="photo")
                with gr.Column():
                    photo_image = gr.Dropdown(
                        label="Image generator", choices=model_choices("image"), value="demo", elem_id="photo-image"
                    )
                    latent_name = gr.Textbox(label="Latent name (default: the photo's)", elem_id="latent-name")
                    steps = gr.Number(label="Steps", value=1000, precision=0, minimum=1, elem_id="steps")
                    loss = gr.Radio(
                        label="Distance",
                        choices=["perceptual", "pixel"],
                        value="perceptual" if have_vgg16() else "pixel",
                        elem_id="loss",
                    )
                    align = gr.Dropdown(label="Align the face", choices=list(ALIGN), value=next(iter(ALIGN)))
            with gr.Row():
                invert_button = gr.Button("Find its latent", variant="primary", elem_id="invert")
                stop_button = gr.Button("Stop", variant="stop", elem_id="stop")
            latent_text = gr.Markdown(elem_id="latent")
            found = gr.State("")
            with gr.Row():
                photo_motion = gr.Dropdown(
                    label="Motion model", choices=model_choices("motion"), value="demo", elem_id="photo-motion"
                )
                photo_frames = gr.Number(label="Frames", value=32, precision=0, minimum=1, elem_id="photo-frames")
                animate_button = gr.Button("Animate it", variant="primary", elem_id="animate")
            animated = gr.Video(label="Animated", interactive=False, height=320, elem_id="animated")
            animated_file = gr.File(label="Download", interactive=False, elem_id="animated-download")

        def do_cancel(pid):
            if stops.stop(f"{pid}/render"):
                return "cancelling: the frames made so far are being removed"
            return "nothing to cancel: no preview or render of this page is running"

        def do_invert(photo, image, name, steps, loss, align, pid, progress=gr.Progress()):  # noqa: B008 - as above
            def advanced(done, total, dist):
                progress((done, total), desc=f"inverting: distance {dist:.4f}", unit="steps")

            with stops.running(f"{pid}/invert") as should_stop:
                stored = jobs.invert_photo(
                    settings,
                    photo,
                    image or "",
                    name or "",
                    steps if steps is not None else 0,
                    loss,
                    ALIGN.get(align),
                    advanced,
                    should_stop,
                )
            info = stored.latent.info
            stopped = " (stopped early: the best so far)" if info.get("stopped") else ""
            text = (
                f"stored latent **{stored.name}**{stopped}: distance {float(stored.latent.distance[0]):.4f} "
                f"after {info['steps']} steps; it starts videos here and in Render ('Start from latent')"
            )
            latents = ["", *model_choices("latent")]
            return text, stored.name, gr.Dropdown(choices=latents)

        def do_stop(pid):
            if stops.stop(f"{pid}/invert"):
                return "stopping after this step: the best latent so far will be stored"
            if stops.stop(f"{pid}/animate"):
                return "cancelling the animation: the frames made so far are being removed"
            return "nothing to stop: no inversion or animation of this page is running"

        def do_animate(latent, image, motion, frames, pid, progress=gr.Progress()):  # noqa: B008 - as above
            if not latent:
                raise MocohdError("find the photo's latent first")
            o = RenderOptions(motion=motion or "", image=image or "", start=latent, frames=frames or 0)
            try:
                with stops.running(f"{pid}/animate") as should_stop:
                    result, note = jobs.render_video(
                        settings, o, latent, False, frame_progress(progress, "rendering"), should_stop
                    )
            except Cancelled:
                return gr.skip(), gr.skip(), CANCELLED
            return str(result.paths[0]), str(result.paths[0]), gr.skip()

        # ------------------------------------------------------------------ Training
        with gr.Tab("Training", id="training"):
            with gr.Row():
                run = gr.Dropdown(label="Run", choices=runs.list_runs(), elem_id="run")
                live = gr.Checkbox(label="Live (re-read every few seconds)", value=True, elem_id="live")
                reload = gr.Button("Refresh", scale=0)
            run_text = gr.Markdown(elem_id="run-text")
            with gr.Row():
                loss_plot = gr.LinePlot(x="step", y="value", color="series", title="Losses", elem_id="loss-plot")
                monitor_plot = gr.LinePlot(
                    x="step", y="value", color="series", title="Monitor distance", elem_id="monitor-plot"
                )
                fvd_plot = gr.LinePlot(x="step", y="value", color="series", title="FVD", elem_id="fvd-plot")
            samples = gr.Gallery(
                label="Samples (the latest 8)", columns=2, height="auto", object_fit="contain", elem_id="samples"
            )
            timer = gr.Timer(LIVE_SECONDS, active=True)

        def frame_of(series, names):
            rows = [(s, v, n) for n in names for s, v in series.get(n, [])]
            return pd.DataFrame(rows, columns=["step", "value", "series"])

        def show_run(name):
            if not name:
                empty = pd.DataFrame(columns=["step", "value", "series"])
                return "", empty, empty, empty, []
            series = runs.read_metrics(name)
            losses = runs.losses(series)
            others = [k for k in series if k not in losses]
            monitor = [k for k in others if k == "monitor distance"]
            files = runs.run_samples(name)
            last = max((s for v in series.values() for s, _ in v), default=0)
            text = f"run **{name}**: step {last}, {len(files)} sample(s); " + (
                ", ".join(f"{k} {series[k][-1][1]:.4g}" for k in others) or "no monitor or FVD measured"
            )
            gallery = [(str(p), p.stem.replace("step_", "step ")) for p in files[-8:]]
            fvd = [k for k in others if k not in monitor]
            return text, frame_of(series, losses), frame_of(series, monitor), frame_of(series, fvd), gallery

        def list_runs(current):
            names = runs.list_runs()
            return gr.Dropdown(choices=names, value=current if current in names else (names[0] if names else None))

        # ------------------------------------------------------------------ events
        def refresh_lists():  # the models and latents as they are now (a fetch, an invert on the command line)
            motions, images = gr.Dropdown(choices=model_choices("motion")), gr.Dropdown(choices=model_choices("image"))
            latents = gr.Dropdown(choices=["", *model_choices("latent")])
            return *list_models(), motions, images, latents, images, motions

        lists = [table, picked, motion, image, start, photo_image, photo_motion]
        page.load(safe(refresh_lists), None, lists)
        refresh.click(safe(refresh_lists), None, lists)
        picked.change(safe(show_info), picked, info)
        preview_button.click(safe(do_preview), options, [preview_video, message])
        render_button.click(safe(do_render), options | {name, replace}, [rendered, download, message])
        cancel_button.click(do_cancel, page_id, message, queue=False)
        invert_button.click(
            safe(do_invert), [photo, photo_image, latent_name, steps, loss, align, page_id], [latent_text, found, start]
        )
        stop_button.click(do_stop, page_id, latent_text, queue=False)
        animate_button.click(
            safe(do_animate),
            [found, photo_image, photo_motion, photo_frames, page_id],
            [animated, animated_file, latent_text],
        )
        run.change(safe(show_run), run, [run_text, loss_plot, monitor_plot, fvd_plot, samples])
        reload.click(safe(list_runs), run, run)
        timer.tick(safe(show_run), run, [run_text, loss_plot, monitor_plot, fvd_plot, samples], show_progress="hidden")
        live.change(lambda on: gr.Timer(active=on), live, timer)
    return page


def _described(result, what: str) -> str:
    h, w = result.size
    text = f"{what}: {result.videos} video(s) of {result.frames} frames, {w}x{h}"
    if result.cross_domain:
        text += f"; {result.cross_domain}"
    return text
