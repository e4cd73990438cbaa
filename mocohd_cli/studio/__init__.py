"""``mocohd studio``: a local web page over the same library functions as the command line.

    from mocohd_cli.studio import StudioSettings, serve
    serve(StudioSettings(output=Path("studio-output"), port=7860))   # http://127.0.0.1:7860 until Ctrl-C

``jobs``: what the page's buttons do, checked against the studio's limits (no Gradio needed);
``runs``: training runs read for the page; ``page``: the Gradio page itself (the ``studio`` extra).
"""

from .jobs import RenderOptions, StudioSettings
from .page import STUDIO_MISSING, build_page, exposure, serve

__all__ = ["STUDIO_MISSING", "RenderOptions", "StudioSettings", "build_page", "exposure", "serve"]
