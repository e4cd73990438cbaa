"""The import layers of mocohd_cli (LAYERS below: which modules each module may import).

Each module imports only from its own layer or a lower one, same-layer
imports form no cycle, and no module of the package is imported inside a
function: the import graph is read from the source (``ast``), so a
violation fails here before it can become an import-order bug. Then every
module is imported alone, with only what it imports itself, to show that
the graph really holds.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

PACKAGE = "mocohd_cli"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

# Module or package -> layer. A module's layer is that of its longest listed prefix
# (the package itself, its __init__, only by name: a new module must be listed).
LAYERS = {
    # 0 base: errors, devices, process groups, ImageNet class names
    "mocohd_cli.errors": 0,
    "mocohd_cli.runtime": 0,
    "mocohd_cli.distributed": 0,
    "mocohd_cli.classes": 0,
    "mocohd_cli.dict_config": 0,  # config dataclasses: a checked dict round trip
    "mocohd_cli.stopping": 0,  # the graceful stop of long commands (SIGINT, SIGTERM)
    # 1 kernels
    "mocohd_cli.ops": 1,
    # 2 networks
    "mocohd_cli.generators": 2,
    "mocohd_cli.motion": 2,
    "mocohd_cli.encoders": 2,  # image -> w (train-encoder, invert --encoder, prepare --encode)
    "mocohd_cli.discriminators": 2,
    "mocohd_cli.losses": 2,
    "mocohd_cli.augment": 2,
    "mocohd_cli.detectors": 2,
    "mocohd_cli.perceptual": 2,  # VGG16 and the pixel distance of invert
    # 3 PCA maths; metric maths (Fréchet distance, feature statistics)
    "mocohd_cli.pca": 3,
    "mocohd_cli.sefa": 3,  # SeFa: directions of the style layers, in closed form
    "mocohd_cli.metrics": 3,
    # 4 file formats
    "mocohd_cli.formats": 4,
    # 5 the model store
    "mocohd_cli.store": 5,
    # 6 models by name (the store-backed loaders), caches
    "mocohd_cli.loaders": 6,
    # 7 recipes: frames, video files, datasets
    "mocohd_cli.frames": 7,
    "mocohd_cli.video": 7,
    "mocohd_cli.data": 7,
    "mocohd_cli.metrics.protocol": 7,  # the evaluation protocol: real clips from datasets
    "mocohd_cli.photos": 7,  # photos read for invert
    "mocohd_cli.faces": 7,  # faces aligned as FFHQ's (invert --align): dlib's landmarks, NVIDIA's crop
    "mocohd_cli.edits": 7,  # semantic edits of every frame's w's (frames.synthesize applies them)
    "mocohd_cli.paths": 7,  # loops and keyframe paths through the latent space (render --loop, --keyframes)
    "mocohd_cli.audio": 7,  # music: audio features drive the motion, the track is muxed in (render --audio)
    # 8 commands
    "mocohd_cli.render": 8,
    "mocohd_cli.train": 8,
    "mocohd_cli.hub": 8,
    "mocohd_cli.invert": 8,  # `mocohd invert`: the latent of a photo
    "mocohd_cli.directions": 8,  # `mocohd directions`: edit directions listed and pictured
    "mocohd_cli.metrics.evaluate": 8,  # `mocohd eval`: renders fakes, embeds, compares (train --eval-every uses it)
    "mocohd_cli.studio": 8,  # `mocohd studio`: the web page over render, invert and the store (Gradio, lazily)
    # 9 the command line and the package's public API
    "mocohd_cli.cli": 9,
    "mocohd_cli.__main__": 9,
    "mocohd_cli": 9,
}

# Third-party packages that may be imported inside a function, and why.
DEFERRED_OK = {
    "huggingface_hub": "about 0.2 s to import; only fetch and push use it",
    "gradio": "the studio extra (not installed by default) and seconds to import; only mocohd studio uses it",
    "pandas": "Gradio's own dependency, for the studio's plots; imported with it",
    "starlette": "Gradio's own web framework: the studio's middleware is added to it; imported with it",
}


def layer(module: str) -> int | None:
    if module == PACKAGE:
        return LAYERS[PACKAGE]
    parts = module.split(".")
    for n in range(len(parts), 1, -1):
        prefix = ".".join(parts[:n])
        if prefix in LAYERS:
            return LAYERS[prefix]
    return None


def package_sources() -> dict[str, tuple[str, bool]]:
    """module name -> (source, is_package) for every module of the package."""
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        out[name] = (path.read_text(encoding="utf-8"), is_package)
    return out


def imports(module: str, source: str, is_package: bool, known: set[str]):
    """(imported module, line, inside a function) for every import statement of ``module``, at
    any depth. ``from X import name`` imports X.name when that is a module of the package, else X."""
    here = module if is_package else module.rpartition(".")[0]
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            deferred = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((a.name, child.lineno, in_function) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    up = here.split(".")[: len(here.split(".")) - (child.level - 1)]
                    base = ".".join(up + ([base] if base else []))
                for a in child.names:
                    target = f"{base}.{a.name}"
                    found.append((target if target in known else base, child.lineno, in_function))
            visit(child, deferred)

    visit(ast.parse(source), False)
    return found


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The cycles of a directed graph found by depth-first search (one per back edge)."""
    state, stack, found = {}, [], []

    def dfs(v):
        state[v] = "open"
        stack.append(v)
        for w in sorted(edges.get(v, ())):
            if state.get(w) == "open":
                found.append(stack[stack.index(w) :] + [w])
            elif w not in state:
                dfs(w)
        stack.pop()
        state[v] = "done"

    for v in sorted(edges):
        if v not in state:
            dfs(v)
    return found


def violations(sources: dict[str, tuple[str, bool]]) -> list[str]:
    """Every breach of the layering in ``sources`` (module name -> (source, is_package))."""
    known = set(sources)
    bad, edges = [], {}
    for module, (source, is_package) in sorted(sources.items()):
        mine = layer(module)
        if mine is None:
            bad.append(f"{module}: not in the layer table (tests/test_layers.py LAYERS)")
            continue
        for target, line, deferred in imports(module, source, is_package, known):
            where = f"{module}:{line}"
            if target != PACKAGE and not target.startswith(PACKAGE + "."):
                if deferred and target.split(".")[0] not in DEFERRED_OK:
                    bad.append(f"{where}: imports {target} inside a function (only {sorted(DEFERRED_OK)} may be)")
                continue
            if deferred:
                bad.append(f"{where}: imports {target} inside a function; import it at the top")
            theirs = layer(target)
            if theirs is None:
                bad.append(f"{where}: imports {target}, which is not in the layer table")
            elif theirs > mine:
                bad.append(f"{where}: layer {mine} imports {target} of the higher layer {theirs}")
            if target != module:
                edges.setdefault(module, set()).add(target)
    bad += [f"import cycle: {' -> '.join(c)}" for c in _cycles(edges)]
    return bad


def test_every_module_imports_only_its_own_layer_or_lower_at_the_top():
    sources = package_sources()
    assert len(sources) > 40 and "mocohd_cli.loaders.pca_bases" in sources
    assert violations(sources) == []


def test_the_layer_check_catches_each_kind_of_breach():
    good = package_sources()

    def check(**changed):
        sources = {**good, **{k.replace("__", "."): (textwrap.dedent(v), False) for k, v in changed.items()}}
        return violations(sources)

    assert check() == []
    # a network that reaches up to the store cache
    up = check(mocohd_cli__ops="from .loaders.pca_bases import pca_for\n")
    assert any(
        "mocohd_cli.ops:1: layer 1 imports mocohd_cli.loaders.pca_bases of the higher layer 6" in v for v in up
    ), up
    # the same import, hidden in a function
    hidden = check(mocohd_cli__pca="def f():\n    from . import store\n")
    assert any("mocohd_cli.pca:2: imports mocohd_cli.store inside a function" in v for v in hidden), hidden
    assert any("layer 3 imports mocohd_cli.store of the higher layer 5" in v for v in hidden), hidden
    # an absolute import, a relative one from a sub-package, and a name imported from a package
    assert any(
        "layer 2 imports mocohd_cli.formats" in v
        for v in check(mocohd_cli__losses="import mocohd_cli.formats.checks\n")
    )
    assert any(
        "mocohd_cli.formats of the higher layer 4" in v
        for v in check(mocohd_cli__motion__generator="from ..formats import read_any\n")
    )
    # two modules of one layer that import each other
    cycle = check(mocohd_cli__frames="from .video import tile\n", mocohd_cli__video="from . import frames\n")
    assert "import cycle: mocohd_cli.frames -> mocohd_cli.video -> mocohd_cli.frames" in cycle, cycle
    # a slow third-party import may wait for its function; any other may not
    assert check(mocohd_cli__hub="def f():\n    import huggingface_hub\n") == []
    assert any("imports numpy inside a function" in v for v in check(mocohd_cli__hub="def f():\n    import numpy\n"))
    # a new module must be given a layer
    assert any("mocohd_cli.eval: not in the layer table" in v for v in check(mocohd_cli__eval="import torch\n"))


IMPORT_ALONE = """
import importlib, importlib.util, sys, traceback
names = sys.argv[1:]
spec = importlib.util.find_spec("mocohd_cli")
failed = []
for name in names:
    for k in [k for k in sys.modules if k == "mocohd_cli" or k.startswith("mocohd_cli.")]:
        del sys.modules[k]
    interface = name in ("mocohd_cli", "mocohd_cli.__main__") or (name + ".").startswith("mocohd_cli.cli.")
    if not interface:  # (the command line's modules need the package's __version__)
        # the package without running its __init__ (which imports the public API): only what
        # ``name`` imports itself is imported
        sys.modules["mocohd_cli"] = importlib.util.module_from_spec(spec)
    try:
        if name == "mocohd_cli.__main__":  # runs the command line: ask it for its version
            sys.argv = ["mocohd", "--version"]
            try:
                importlib.import_module(name)
            except SystemExit as e:
                assert e.code in (0, None), e.code
        else:
            importlib.import_module(name)
    except BaseException:
        failed.append(name + ":\\n" + traceback.format_exc())
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_every_module_imports_alone():
    """Each module, in turn, is imported with no other module of the package loaded (one
    interpreter for all, so torch is imported once: about 2 s instead of 1 s per module)."""
    names = sorted(package_sources())
    r = subprocess.run([sys.executable, "-c", IMPORT_ALONE, *names], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]


# ------------------------------------------------------------------------------------ names

# A file name may repeat only where each package holding it is about one aspect of the same
# family: its network (generators/, detectors/), its file format (formats/) or its
# discriminator (discriminators/stylegan2.py); ``families`` is each such package's table.
FAMILY_NAMES = {"biggan", "stylegan2", "i3d", "inception", "families"}


def test_one_name_per_concept():
    by_name: dict[str, list[str]] = {}
    for path in ROOT.rglob("*.py"):
        if path.stem not in ("__init__", "__main__"):
            by_name.setdefault(path.stem, []).append(str(path.relative_to(ROOT)))
    packages = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    twins = {n: sorted(ps) for n, ps in by_name.items() if len(ps) > 1 and n not in FAMILY_NAMES}
    assert not twins, twins
    clashes = sorted(n for n in by_name if n in packages)  # a module named like a package elsewhere
    assert not clashes, clashes


def test_package_inits_only_re_export():
    """An ``__init__.py`` holds a docstring, imports, ``__all__`` and ``__version__``: the code
    lives in modules named for what they do."""
    for path in ROOT.rglob("__init__.py"):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
                continue  # the docstring
            names = [t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)]
            assert names and set(names) <= {"__all__", "__version__"}, (
                f"{path.relative_to(ROOT)}:{node.lineno}: code in a package's __init__"
            )


# The training loops and the command line read top to bottom: a function there that grows past a
# screen is split into named steps. Counted from the ``def`` line to the end without the parameter
# list: a command's options are declarations (one per line, each with its help), not steps to split.
SHORT_FUNCTIONS = ("mocohd_cli/train", "mocohd_cli/cli")
MAX_FUNCTION_LINES = 60


def test_functions_of_the_loops_and_the_command_line_are_short():
    long = []
    for folder in SHORT_FUNCTIONS:
        for path in sorted((ROOT.parent / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    lines = node.end_lineno - node.body[0].lineno + 2  # the def line and the body
                    if lines > MAX_FUNCTION_LINES:
                        long.append(f"{path.relative_to(ROOT.parent)}:{node.lineno} {node.name}: {lines} lines")
    assert not long, long
