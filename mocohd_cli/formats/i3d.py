"""StyleGAN-V's ``i3d_torchscript.pt`` (the FVD detector) to our ``I3D``.

The archive is read as data (``torchscript.read_archive``; never
``torch.jit.load``) and mapped by its own module tree and tensor shapes, not
by names (we do not rely on what the file calls its modules):

- its tensors in module-tree order (``Archive.named_tensors``): the 5-D ones
  are convolution weights, which must be the Inception-I3D's 58 in forward
  order (3 stem, 6 for each of the 9 mixed blocks: Branch_0, Branch_1 1x1x1 and
  3x3x3, Branch_2 1x1x1 and 3x3x3, Branch_3; then the logits), their kernels
  7, 1, 3 / 1, 1, 3, 1, 3, 1 / 1, and their input channels the chain the
  architecture implies (a block's input is the concat of the previous block's
  four branches). Every width comes from the shapes. One exception to the
  order: a 1x1x1 weight before the 7x7x7 one is the logits' (pytorch-i3d's
  ``InceptionI3d`` creates ``self.logits`` before ``build()`` registers the
  rest, so a port built on it pickles the logits first);
- each 1-D tensor belongs to one convolution: the one whose unit holds it (the
  largest module around the weight that holds no other convolution), else the
  convolution before it in order. Its own attribute name says what it is:
  running_mean / moving_mean / mean, running_var / moving_variance / var,
  weight / gamma / scale, bias / beta / offset (also with a prefix:
  ``bn_running_mean``). A ``bias`` in the convolution's own module (and not
  called ``bn_bias``) is the convolution's bias; a convolution with a bias and
  no statistics has its batch norm folded already. 0-d tensors
  (``num_batches_tracked``) are ignored;
- batch norm is folded: w' = w * g / sqrt(var + eps), b' = beta + (b - mean) *
  g / sqrt(var + eps), with g = 1 when there is no scale (sonnet's BatchNorm,
  which kinetics-i3d uses, has ``scale=False``). eps is read from the archive:
  a float ``eps`` attribute of the batch-norm module, else its class's code
  (``eps : Final[float] = ...`` for a scripted ``nn.BatchNorm3d``, or the 8th
  argument of its ``batch_norm(...)`` call, which is where a traced one keeps
  it), else its enclosing modules' code, else the one eps every
  ``batch_norm`` call of the archive uses; 1e-3 (sonnet's default) when none
  says. ``notes`` records the value and where it came from.
"""

from __future__ import annotations

import ast
import math
import re

import torch

from ..detectors.i3d import BLOCKS, BRANCH_KERNEL, BRANCHES, LOGITS, STEM, STEM_KERNEL, I3DConfig
from ..errors import MocohdError
from .checks import check_finite
from .torchscript import Archive, ScriptObject

FORMAT = "i3d-torchscript"
DEFAULT_EPS = 1e-3  # sonnet snt.BatchNorm's default, kinetics-i3d's batch norm
_DEFAULT = (DEFAULT_EPS, "none in the archive: sonnet's default")
N_CONVS = len(STEM) + len(BLOCKS) * len(BRANCHES) + 1

_BRANCH_TEXT = {
    "b0": "Branch_0 1x1x1 conv",
    "b1a": "Branch_1 1x1x1 conv",
    "b1b": "Branch_1 3x3x3 conv",
    "b2a": "Branch_2 1x1x1 conv",
    "b2b": "Branch_2 3x3x3 conv",
    "b3": "Branch_3 1x1x1 conv",
}

# attribute-name endings -> role of a 1-D tensor (checked in this order)
_ROLES = (
    ("mean", ("running_mean", "moving_mean", "mean")),
    ("var", ("running_var", "moving_variance", "moving_var", "variance", "var")),
    ("scale", ("gamma", "scale")),
    ("offset", ("beta", "offset")),
    ("weight", ("weight",)),
    ("bias", ("bias",)),
)


def _shape(t) -> str:
    return "[" + ", ".join(str(int(n)) for n in t) + "]"


def _role(attr: str) -> str | None:
    a = attr.lower()
    for role, endings in _ROLES:
        if any(a == e or a.endswith("_" + e) for e in endings):
            return role
    return None


def _module_of(path: str) -> str:
    return path.rpartition(".")[0]


def _inside(path: str, scope: str) -> bool:
    return scope == "" or path.startswith(scope + ".")


class _Conv:
    """One convolution weight of the archive and the vectors that belong to it."""

    def __init__(self, path: str, weight: torch.Tensor):
        self.path, self.weight, self.vectors = path, weight, []
        self.scope: str | None = None


def _group(archive: Archive) -> list[_Conv]:
    named = archive.named_tensors()
    convs = [_Conv(p, t) for p, t in named if t.ndim == 5]
    weights = [c.path for c in convs]
    for c in convs:  # the largest enclosing module that holds no other convolution
        module = _module_of(c.path)
        parts = module.split(".") if module else []
        for n in range(len(parts), -1, -1):
            scope = ".".join(parts[:n])
            if sum(_inside(w, scope) for w in weights) != 1:
                break
            c.scope = scope
    by_path = {c.path: c for c in convs}
    last = None
    for path, t in named:
        if t.ndim == 0:
            continue  # num_batches_tracked and other counters
        if t.ndim == 5:
            last = by_path[path]
            continue
        if t.ndim != 1:
            raise MocohdError(
                f"{archive.path}: cannot place tensor '{path}' {_shape(t.shape)}: the Inception-I3D "
                "holds only 5-D convolution weights and their 1-D biases and batch-norm vectors"
            )
        owner = next((c for c in convs if c.scope is not None and _inside(path, c.scope)), last)
        if owner is None:
            raise MocohdError(
                f"{archive.path}: cannot place tensor '{path}' {_shape(t.shape)}: a vector before the "
                "first convolution weight"
            )
        owner.vectors.append((path, t))
    return convs


def _slots() -> list[tuple]:
    """(kind, name) of every convolution in forward order: the stem's, each block's six, the logits'."""
    return [("stem", n) for n in STEM] + [("mixed", (b, br)) for b in BLOCKS for br in BRANCHES] + [("logits", LOGITS)]


def _place(archive: Archive, convs: list[_Conv]) -> tuple[dict, list[tuple[str, _Conv, dict]]]:
    """Check every weight against its slot and its vectors against it, in order:
    (config dict, [(our name, conv, its vectors by role)])."""
    slots = _slots()
    if len(convs) > 1 and convs[0].weight.shape[2:] == (1, 1, 1) and convs[1].weight.shape[2:] == (7, 7, 7):
        convs = convs[1:] + convs[:1]  # the logits first: see the module docstring
    placed: list[tuple[str, _Conv, dict]] = []
    widths: dict[str, int] = {}  # our conv name -> output channels
    cin_next = None  # the input channels of the next stem conv / block
    block_in = None
    in_channels = None
    for i, c in enumerate(convs):
        if i >= len(slots):
            raise MocohdError(
                f"{archive.path}: cannot place tensor '{c.path}' {_shape(c.weight.shape)}: the archive "
                f"holds {len(convs)} convolution weights (5-D tensors), the Inception-I3D {N_CONVS} "
                "(3 stem, 6 in each of 9 mixed blocks, 1 for the logits)"
            )
        kind, name = slots[i]
        if kind == "stem":
            ours, text, k = name, name, STEM_KERNEL[name]
            cin = cin_next
        elif kind == "logits":
            ours, text, k, cin = LOGITS, "the Logits 1x1x1 conv", 1, cin_next
        else:
            block, branch = name
            ours, text, k = f"{block}.{branch}", f"{block} {_BRANCH_TEXT[branch]}", BRANCH_KERNEL[branch]
            if branch == "b0":
                block_in = cin_next
            cin = {"b1b": widths.get(f"{block}.b1a"), "b2b": widths.get(f"{block}.b2a")}.get(branch, block_in)
        want = f"[N, {cin if cin is not None else 'C'}, {k}, {k}, {k}]"
        s = tuple(c.weight.shape)
        if s[2:] != (k, k, k) or (cin is not None and s[1] != cin) or not c.weight.is_floating_point():
            raise MocohdError(
                f"{archive.path}: cannot place tensor '{c.path}' {_shape(s)}: expected the weight of {text} {want}"
            )
        if in_channels is None:
            in_channels = s[1]
        widths[ours] = s[0]
        placed.append((ours, c, _vectors(archive, c)))
        if kind == "stem":
            cin_next = s[0]
        elif kind == "mixed" and name[1] == "b3":
            b = name[0]
            cin_next = widths[f"{b}.b0"] + widths[f"{b}.b1b"] + widths[f"{b}.b2b"] + widths[f"{b}.b3"]
    if len(convs) < N_CONVS:
        missing = slots[len(convs)]
        what = missing[1] if missing[0] != "mixed" else f"{missing[1][0]} {_BRANCH_TEXT[missing[1][1]]}"
        raise MocohdError(
            f"{archive.path}: the archive holds {len(convs)} convolution weights (5-D tensors), the "
            f"Inception-I3D {N_CONVS} (3 stem, 6 in each of 9 mixed blocks, 1 for the logits); "
            f"the first missing is {what}"
        )
    config = {
        "conv3d_1a_7x7": widths["Conv3d_1a_7x7"],
        "conv3d_2b_1x1": widths["Conv3d_2b_1x1"],
        "conv3d_2c_3x3": widths["Conv3d_2c_3x3"],
        **{b.lower(): [widths[f"{b}.{br}"] for br in BRANCHES] for b in BLOCKS},
        "num_classes": widths[LOGITS],
        "in_channels": in_channels,
        "size": 224,
    }
    return config, placed


def _vectors(archive: Archive, c: _Conv) -> dict[str, tuple[str, torch.Tensor]]:
    """role ('bias', 'mean', 'var', 'scale', 'offset') -> (path, tensor) of one conv's vectors."""
    out: dict[str, tuple[str, torch.Tensor]] = {}
    n = c.weight.shape[0]
    home = _module_of(c.path)
    roles = [(p, t, _role(p.rpartition(".")[2])) for p, t in c.vectors]
    has_stats = any(r in ("mean", "var") for _, _, r in roles)
    for p, t, r in roles:
        if r is None or not t.is_floating_point():
            raise MocohdError(
                f"{archive.path}: cannot place tensor '{p}' {_shape(t.shape)}: a vector after the "
                f"convolution weight '{c.path}' that is neither its bias nor a batch-norm "
                "mean, variance, scale or offset"
            )
        attr = p.rpartition(".")[2].lower()
        named_bn = re.search(r"bn|norm|batch", attr.rpartition("_")[0]) is not None  # 'bn_bias', 'batchnorm_weight'
        if r == "weight":
            r = "scale"
        elif r == "bias":
            r = "offset" if has_stats and (named_bn or _module_of(p) != home) else "bias"
        if t.shape[0] != n:
            raise MocohdError(
                f"{archive.path}: cannot place tensor '{p}' {_shape(t.shape)}: expected a vector of "
                f"the convolution '{c.path}' [{n}] (its {r})"
            )
        if r in out:
            raise MocohdError(
                f"{archive.path}: cannot place tensor '{p}' {_shape(t.shape)}: the convolution "
                f"'{c.path}' already has a {r} ('{out[r][0]}')"
            )
        out[r] = (p, t)
    if has_stats or "scale" in out or "offset" in out:
        for r in ("mean", "var"):
            if r not in out:
                p, t = next((p, t) for p, t in c.vectors)
                raise MocohdError(
                    f"{archive.path}: cannot place tensor '{p}' {_shape(t.shape)}: the batch norm of "
                    f"the convolution '{c.path}' has no running {r}"
                )
    return out


# --------------------------------------------------------------- batch-norm eps


def _number(node) -> float | None:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        v = _number(node.operand)
        return None if v is None else -v
    return None


def _dotted(node) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _eps_in(tree: ast.AST) -> list[float]:
    """The eps values a piece of TorchScript code gives batch norm: ``eps : Final[float] = x``
    class constants, and the 8th argument (or ``eps=``) of ``batch_norm`` calls (``torch.batch_norm``,
    ``F.batch_norm``, or a local alias of either, as scripted code writes ``_0 = ...batch_norm``)."""
    found: list[float] = []
    aliases = {
        n.targets[0].id
        for n in ast.walk(tree)
        if isinstance(n, ast.Assign)
        and len(n.targets) == 1
        and isinstance(n.targets[0], ast.Name)
        and _dotted(n.value).endswith("batch_norm")
    }
    for n in ast.walk(tree):
        if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name) and n.target.id in ("eps", "epsilon"):
            v = _number(n.value) if n.value is not None else None
            if v is not None:
                found.append(v)
        elif isinstance(n, ast.Call):
            f = _dotted(n.func)
            if f.endswith("batch_norm") or f in aliases:
                kw = {k.arg: k.value for k in n.keywords}
                node = kw.get("eps", n.args[7] if len(n.args) > 7 else None)
                v = _number(node) if node is not None else None
                if v is not None:
                    found.append(v)
    return found


class _EpsFinder:
    def __init__(self, archive: Archive):
        self.archive = archive
        self.objects = archive.objects()
        self.trees: dict[str, ast.AST | None] = {}

    def _class_tree(self, qualified: str) -> ast.AST | None:
        if qualified not in self.trees:
            text = self.archive.class_source(qualified)
            try:
                self.trees[qualified] = None if text is None else ast.parse(text)
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                self.trees[qualified] = None
        return self.trees[qualified]

    def for_module(self, module: str) -> tuple[float, str] | None:
        """(eps, where) for the batch norm whose statistics live in ``module``: its attribute,
        its class's code, then the code of the modules around it."""
        obj = self.objects.get(module)
        if isinstance(obj, ScriptObject):
            for key in ("eps", "epsilon", "variance_epsilon"):
                v = obj.state.get(key)
                if type(v) in (int, float) and math.isfinite(v):
                    return float(v), f"the attribute {key} of class {obj.class_name}"
        parts = module.split(".") if module else []
        for n in range(len(parts), -1, -1):
            path = ".".join(parts[:n])
            o = self.objects.get(path)
            if not isinstance(o, ScriptObject):
                continue
            tree = self._class_tree(o.qualified_name)
            values = sorted(set(_eps_in(tree))) if tree is not None else []
            if len(values) == 1:
                return values[0], f"the code of class {o.class_name}"
        return None

    def everywhere(self) -> tuple[float, str] | None:
        values = set()
        for text in self.archive.code.values():
            if "batch_norm" not in text and not re.search(r"\beps\b", text):
                continue
            try:
                values.update(_eps_in(ast.parse(text)))
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                continue
        return (values.pop(), "the archive's batch_norm calls") if len(values) == 1 else None


# --------------------------------------------------------------------- convert


def convert(archive: Archive) -> tuple[dict, dict[str, torch.Tensor], dict]:
    """A TorchScript Inception-I3D archive -> (``I3DConfig`` dict, our ``I3D`` state dict, notes)."""
    named = archive.named_tensors()
    check_finite({p: t for p, t in named if t.is_floating_point()}, archive.path)
    convs = _group(archive)
    config, placed = _place(archive, convs)
    logits_first = placed[-1][1] is convs[0]
    try:
        cfg = I3DConfig.from_dict(config)
    except (TypeError, ValueError) as e:
        raise MocohdError(f"{archive.path}: its widths make no I3D: {e}") from e
    finder = _EpsFinder(archive)
    fallback = finder.everywhere()
    out: dict[str, torch.Tensor] = {}
    eps_used: dict[float, set[str]] = {}
    n_bn = 0
    for ours, c, v in placed:
        w = c.weight.double()
        bias = v["bias"][1].double() if "bias" in v else torch.zeros(w.shape[0], dtype=torch.float64)
        if "mean" in v:
            n_bn += 1
            eps, where = finder.for_module(_module_of(v["mean"][0])) or fallback or _DEFAULT
            eps_used.setdefault(eps, set()).add(where)
            var = v["var"][1].double()
            if not bool((var + eps > 0).all()):
                raise MocohdError(f"{archive.path}: tensor '{v['var'][0]}' holds a negative variance (a damaged file)")
            g = v["scale"][1].double() if "scale" in v else torch.ones_like(var)
            beta = v["offset"][1].double() if "offset" in v else torch.zeros_like(var)
            s = g / torch.sqrt(var + eps)
            w = w * s.view(-1, 1, 1, 1, 1)
            bias = beta + (bias - v["mean"][1].double()) * s
        out[f"{ours}.weight"] = w.float().contiguous()
        out[f"{ours}.bias"] = bias.float().contiguous()
    shapes = {k: tuple(t.shape) for k, t in out.items()}
    if shapes != cfg.state_shapes():  # the placement above guarantees it; a cheap second look
        raise MocohdError(f"{archive.path}: the converted tensors do not match the I3D config")
    check_finite(out, archive.path)
    notes: dict = {
        "batch_norm": f"folded ({n_bn} of {len(placed)} convolutions)"
        if n_bn
        else "none (the convolutions carry biases)"
    }
    if eps_used:
        values = sorted(eps_used)
        notes["bn_eps"] = values[0] if len(values) == 1 else values
        notes["bn_eps_source"] = "; ".join(sorted({w for ws in eps_used.values() for w in ws}))
    if logits_first:
        notes["logits_stored_first"] = True
    if archive.version:
        notes["torchscript_version"] = archive.version
    return cfg.to_dict(), out, notes


__all__ = ["FORMAT", "convert"]
