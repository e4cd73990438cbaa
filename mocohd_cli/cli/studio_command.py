"""`mocohd studio`: serve the studio's page (``mocohd_cli.studio``) until Ctrl-C."""

from __future__ import annotations

from pathlib import Path

from ..studio import StudioSettings, exposure, serve
from .console import say
from .options import option

Host = option(
    str,
    "--host",
    help="Address to listen on: 127.0.0.1 (this machine only) by default; 0.0.0.0 opens the page, with no "
    "password, to everyone who can reach this machine (your models, renders, uploads and run samples).",
)
Port = option(int, "--port", help="Port to listen on.")
Output = option(Path, "--output", "-o", help="Folder of the renders (and the page's uploads); created if needed.")
MaxUpload = option(float, "--max-upload-mb", help="Largest photo or music file the page accepts, in MB.")
MaxFrames = option(int, "--max-frames", help="Most frames per video the page renders.")
MaxVideos = option(int, "--max-videos", help="Most videos per render.")
PreviewSize = option(
    int,
    "--preview-size",
    help="Side in px of each video of a preview (a power of two; a smaller generator's own): StyleGAN2 stops "
    "its synthesis there, others shrink their frames.",
)


def studio(
    host: Host = StudioSettings.host,
    port: Port = StudioSettings.port,
    output: Output = StudioSettings.output,
    max_upload_mb: MaxUpload = StudioSettings.max_upload_mb,
    max_frames: MaxFrames = StudioSettings.max_frames,
    max_videos: MaxVideos = StudioSettings.max_videos,
    preview_size: PreviewSize = StudioSettings.preview_size,
):
    """A local web page to pick models, preview and render videos, animate a photo and watch a training run.

    It writes only into the store and the --output folder (renders; previews/ and .studio-cache/ for uploads), never
    over a file without asking, and serves no other files. Needs the studio extra:
    pip install 'mocohd-cli[studio]'. Training itself starts on the command line (mocohd train)."""
    settings = StudioSettings(
        output=output,
        host=host,
        port=port,
        max_upload_mb=max_upload_mb,
        max_frames=max_frames,
        max_videos=max_videos,
        preview_size=preview_size,
    )
    warning = exposure(settings)
    if warning:
        say(f"warning: {warning}")
    serve(
        settings, on_ready=lambda url: say(f"mocohd studio at {url} (output folder {settings.output}); Ctrl-C stops it")
    )
