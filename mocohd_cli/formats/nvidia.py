"""NVIDIA network pickles (``.pkl`` with ``G_ema``): stylegan2-ada-pytorch's
StyleGAN2 and stylegan3's StyleGAN3 (T and R) generators.

Such a pickle stores each network as a call to
``torch_utils.persistence._reconstruct_persistent_obj(meta)``, where ``meta``
holds the Python *source code* of the module (``module_src``), its class name
and its ``__dict__`` (parameters, buffers, sub-modules, constructor
arguments). Loading it with plain ``pickle`` executes that source.

We never do. ``SafeUnpickler`` resolves only an allow-list of globals:
plain containers, PyTorch's tensor rebuild functions (storages themselves are
read with ``torch.load(weights_only=True)``), and two inert stand-ins for
NVIDIA's persistence hook and ``dnnlib.util.EasyDict``. Anything else --
``os.system``, ``builtins.exec``, an unknown class -- stops the load with an
error before it is called. The stand-in keeps ``module_src`` as a string that
nothing reads.
"""

from __future__ import annotations

import collections
import io
import pickle
from pathlib import Path

import numpy as np
import torch

from ..errors import MocohdError
from ..generators.stylegan3 import StyleGAN3Config, design_lowpass_filter
from .checks import PickledState, brief, check_storage
from .stylegan2_layout import check_fir_kernel, infer_channel_layout
from .torch_io import weights_only_reason

FORMAT = "nvidia-pickle"


class PersistentObject(PickledState):
    """Inert stand-in for a network saved by NVIDIA's ``torch_utils.persistence``."""

    def __init__(self, meta: dict):
        if not isinstance(meta, dict):
            raise RefusedContent("malformed persistent object")
        self.class_name = str(meta.get("class_name", ""))
        self.state = meta.get("state") or {}
        # meta["module_src"] (the network's Python source) is dropped unread: never executed.

    def children(self) -> dict:
        return dict(self.state.get("_modules") or {})

    def attr(self, name, default=None):
        return self.state.get(name, default)

    def tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Parameters and buffers of this module and its children, by dotted name."""
        out = {}
        for group in ("_parameters", "_buffers"):
            for k, v in (self.state.get(group) or {}).items():
                if isinstance(v, torch.Tensor):
                    out[prefix + k] = v
        for k, child in self.children().items():
            if isinstance(child, PersistentObject):
                out.update(child.tensors(f"{prefix}{k}."))
        return out


class EasyDict(dict):
    """Inert stand-in for ``dnnlib.util.EasyDict`` (a dict with attribute access)."""


def _load_storage_bytes(b: bytes):
    # PyTorch pickles a storage as torch.save() bytes; read them without code execution.
    try:
        return torch.load(io.BytesIO(b), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise RefusedContent(f"a tensor storage in it holds more than tensor data ({weights_only_reason(e)})") from None


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *state):
    return data  # a plain tensor: nothing here trains


def _numpy_scalar(dtype, data=None):
    # NVIDIA's modules keep gains such as sqrt(2) as numpy scalars: raw bytes + a dtype.
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise RefusedContent("numpy object scalars are not allowed")
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise pickle.UnpicklingError("malformed numpy scalar")
    return np.frombuffer(data, dtype)[0]


def _numpy_array(cls, shape, dtype_code):
    if cls is not np.ndarray:
        raise RefusedContent("only plain numpy arrays are allowed")
    # numpy pickles an array as _reconstruct(ndarray, (0,), b'b') + __setstate__(shape, dtype, raw bytes):
    # the real shape comes with its data. A large placeholder would be allocated for nothing.
    if not isinstance(shape, tuple) or len(shape) > 32 or not all(isinstance(n, int) and 0 <= n <= 1 for n in shape):
        raise pickle.UnpicklingError("malformed numpy array")
    return np.ndarray.__new__(np.ndarray, shape, dtype_code)


_NUMPY = {}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _NUMPY[(_mod, "scalar")] = _numpy_scalar
    _NUMPY[(_mod, "_reconstruct")] = _numpy_array

_ALLOWED = {
    **_NUMPY,
    ("numpy", "dtype"): np.dtype,
    ("numpy", "ndarray"): np.ndarray,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("builtins", "complex"): complex,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_storage_bytes,
    ("torch", "Size"): torch.Size,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): PersistentObject,
    ("dnnlib.util", "EasyDict"): EasyDict,
}


class RefusedContent(pickle.UnpicklingError):
    """The pickle asks for something outside the allow-list."""


class SafeUnpickler(pickle.Unpickler):
    """Resolves only allow-listed globals; everything else is refused unexecuted."""

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise RefusedContent(f"{module}.{name} is not on the allow-list of plain data types") from None

    def persistent_load(self, pid):
        raise RefusedContent("persistent ids are not supported")


def read_pickle(path: str | Path) -> object:
    """The pickle's contents, through ``SafeUnpickler``; refuses tensors that claim
    more data than the file holds (``checks.check_storage``)."""
    try:
        with open(path, "rb") as f:
            obj = SafeUnpickler(f).load()
    except FileNotFoundError as e:
        raise MocohdError(f"{path}: no such file") from e
    except RefusedContent as e:
        raise MocohdError(f"{path}: refused to load: {e}; nothing in it was executed") from e
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        RuntimeError,
        MemoryError,
        OSError,
        OverflowError,
        RecursionError,
    ) as e:
        raise MocohdError(f"{path}: not a readable network pickle (corrupt or truncated?): {brief(e)}") from e
    check_storage(obj, Path(path).stat().st_size, path)
    return obj


def _is_stylegan3(g: PersistentObject) -> bool:
    synthesis = g.children().get("synthesis")
    if not isinstance(synthesis, PersistentObject):
        return False
    kids = synthesis.children()
    return isinstance(kids.get("input"), PersistentObject) and kids["input"].class_name == "SynthesisInput"


def family_of(config: dict) -> str:
    """The generator family of a config that ``convert`` returned."""
    return "stylegan3" if "num_critical" in config else "stylegan2"


def convert(obj: object) -> tuple[dict, dict[str, torch.Tensor], dict]:
    """NVIDIA pickle contents -> (config dict, our state dict, notes); ``family_of(config)``
    says whether it is a stylegan2 or a stylegan3 config."""
    g = obj.get("G_ema") if isinstance(obj, dict) else obj
    if not isinstance(g, PersistentObject):
        raise MocohdError("not a StyleGAN network pickle: no 'G_ema' network in it")
    if _is_stylegan3(g):
        return convert_stylegan3(g)
    if g.class_name != "Generator" or not {"mapping", "synthesis"} <= set(g.children()):
        raise MocohdError(
            f"unknown architecture: G_ema is a {g.class_name or 'unnamed class'} without mapping/synthesis networks"
        )
    if int(g.attr("c_dim", 0) or 0) > 0:
        raise MocohdError("conditional StyleGAN2 generators (c_dim > 0) are not supported yet")

    mapping, synthesis = g.children()["mapping"], g.children()["synthesis"]
    blocks = {int(k[1:]): v for k, v in synthesis.children().items() if k.startswith("b") and k[1:].isdigit()}
    if not blocks:
        raise MocohdError("unknown architecture: no synthesis blocks b4..bR")
    for res, block in blocks.items():
        arch = block.attr("architecture", "skip")
        if arch != "skip":
            raise MocohdError(
                f"unknown architecture: synthesis block b{res} uses '{arch}'; "
                "only the 'skip' generator (configs e/f) is supported"
            )

    raw = g.tensors()
    out: dict[str, torch.Tensor] = {}
    channels = {}
    for name, t in raw.items():
        if name.endswith("resample_filter"):
            check_fir_kernel(t, name)
            continue
        if name.startswith("mapping.embed") or name == "mapping.w_avg" and t.ndim != 1:
            raise MocohdError(f"unknown architecture: unexpected tensor {name}")
        out[name] = t.float()
    for res in blocks:
        key = f"synthesis.b{res}.conv1.weight"
        if key not in out:
            raise MocohdError(f"unknown architecture: missing {key}")
        channels[res] = out[key].shape[0]

    fcs = [m for m in mapping.children() if m.startswith("fc")]
    lr_muls = {float(mapping.children()[m].attr("lr_multiplier", 0.01)) for m in fcs}
    clamps = {
        blk.children()[n].attr("conv_clamp")
        for blk in blocks.values()
        for n in ("conv1", "torgb")
        if n in blk.children()
    }
    if len(lr_muls) != 1 or len(clamps) != 1:
        raise MocohdError("unknown architecture: mapping layers or convolutions differ in lr multiplier / clamp")
    clamp = clamps.pop()
    base, cmax = infer_channel_layout(channels)
    img_res = int(g.attr("img_resolution", max(blocks)))
    if img_res != max(blocks):
        raise MocohdError(f"unknown architecture: img_resolution {img_res} but blocks up to {max(blocks)}")
    config = dict(
        resolution=img_res,
        z_dim=int(g.attr("z_dim")),
        w_dim=int(g.attr("w_dim")),
        img_channels=int(g.attr("img_channels", 3)),
        mapping_layers=len(fcs),
        mapping_lr_mul=lr_muls.pop(),
        channel_base=base,
        channel_max=cmax,
        conv_clamp=None if clamp is None else float(clamp),
        w_avg_beta=float(mapping.attr("w_avg_beta", 0.995) or 0.995),
    )
    return config, out, {}


# ----------------------------------------------------------------------------
# StyleGAN3 (NVlabs/stylegan3, training/networks_stylegan3.py)

# Hyper-parameter -> (where NVIDIA keeps it, its default in NVIDIA's code).
_SG3_SYNTHESIS = {
    "channel_base": 32768,
    "channel_max": 512,
    "num_layers": 14,
    "num_critical": 2,
    "first_cutoff": 2.0,
    "first_stopband": 2**2.1,
    "last_stopband_rel": 2**0.3,
    "margin_size": 10,
    "output_scale": 0.25,
    "num_fp16_res": 4,
    "conv_kernel": 3,
    "filter_size": 6,
    "lrelu_upsampling": 2,
    "use_radial_filters": False,
    "conv_clamp": 256,
    "magnitude_ema_beta": 0.999,
}
_SG3_INT = {
    "channel_base",
    "channel_max",
    "num_layers",
    "num_critical",
    "margin_size",
    "num_fp16_res",
    "conv_kernel",
    "filter_size",
    "lrelu_upsampling",
}


def _plain(value, name: str):
    """A pickled hyper-parameter (int, float, bool, None or numpy scalar) as a plain Python value."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float)):
        return value
    raise MocohdError(f"unknown architecture: hyper-parameter {name} is a {type(value).__name__}")


def _kwargs(obj: PersistentObject) -> dict:
    kw = obj.attr("_init_kwargs") or {}
    return dict(kw) if isinstance(kw, dict) else {}


def convert_stylegan3(g: PersistentObject) -> tuple[dict, dict[str, torch.Tensor], dict]:
    """A StyleGAN3 ``G_ema`` -> (stylegan3 config dict, state dict, notes). The
    hyper-parameters come from the networks' constructor arguments (NVIDIA's defaults
    where one was not given), then every layer's recorded design (sizes, factors,
    padding) and designed filters must be what the config gives."""
    kids = g.children()
    mapping, synthesis = kids.get("mapping"), kids.get("synthesis")
    if (
        g.class_name != "Generator"
        or not isinstance(mapping, PersistentObject)
        or not isinstance(synthesis, PersistentObject)
    ):
        raise MocohdError("unknown architecture: a StyleGAN3 G_ema without mapping/synthesis networks")
    c_dim = _plain(g.attr("c_dim", 0) or 0, "c_dim")
    if c_dim:
        raise MocohdError(f"conditional StyleGAN3 generators (c_dim {c_dim}) are not supported yet")
    g_kw, s_kw, m_kw = _kwargs(g), _kwargs(synthesis), _kwargs(mapping)
    layer_kw = {**g_kw, **s_kw}
    config = {}
    for key, default in _SG3_SYNTHESIS.items():
        value = _plain(layer_kw.get(key, synthesis.attr(key, default)), key)
        if key in _SG3_INT and isinstance(value, float) and value.is_integer():
            value = int(value)
        if (
            key not in _SG3_INT
            and key != "use_radial_filters"
            and isinstance(value, int)
            and not isinstance(value, bool)
        ):
            value = float(value)
        config[key] = value
    fcs = sorted(k for k in mapping.children() if k.startswith("fc"))
    gains = {float(_plain(mapping.children()[k].attr("bias_gain", 0.01), "lr_multiplier")) for k in fcs}
    if len(gains) != 1:
        raise MocohdError("unknown architecture: mapping layers differ in lr multiplier")
    config.update(
        resolution=_plain(g.attr("img_resolution"), "img_resolution"),
        z_dim=_plain(g.attr("z_dim"), "z_dim"),
        w_dim=_plain(g.attr("w_dim"), "w_dim"),
        img_channels=_plain(g.attr("img_channels", 3), "img_channels"),
        mapping_layers=len(fcs),
        mapping_lr_mul=gains.pop(),
        w_avg_beta=float(_plain(mapping.attr("w_avg_beta", m_kw.get("w_avg_beta", 0.998)), "w_avg_beta")),
    )
    if config["conv_clamp"] is not None:
        config["conv_clamp"] = float(config["conv_clamp"])
    if set(m_kw) - {"num_layers", "lr_multiplier", "w_avg_beta", "z_dim", "c_dim", "w_dim", "num_ws"}:
        raise MocohdError(f"unknown architecture: mapping arguments {sorted(set(m_kw))}")
    try:
        cfg = StyleGAN3Config.from_dict(config)
    except ValueError as e:
        raise MocohdError(f"unsupported StyleGAN3 configuration: {e}") from e

    specs = cfg.layer_specs()
    names = [k for k in synthesis.children() if k != "input"]
    if names != [s["name"] for s in specs]:
        raise MocohdError(
            f"unknown architecture: synthesis layers {names[:3]}... differ from the design of its "
            f"hyper-parameters ({[s['name'] for s in specs][:3]}...)"
        )
    for spec in specs:
        layer = synthesis.children()[spec["name"]]
        recorded = {
            "up_factor": spec["up"],
            "down_factor": spec["down"],
            "conv_kernel": spec["conv_kernel"],
            "padding": list(spec["padding"]),
            "is_torgb": spec["torgb"],
            "conv_clamp": cfg.conv_clamp,
        }
        for key, want in recorded.items():
            have = layer.attr(key, want)
            have = [int(v) for v in have] if isinstance(have, (list, tuple)) else _plain(have, key)
            if have != want:
                raise MocohdError(f"unknown architecture: layer {spec['name']} has {key} {have}, its design {want}")

    out: dict[str, torch.Tensor] = {}
    for name, t in g.tensors().items():
        if name.startswith("mapping.embed"):
            raise MocohdError(f"unknown architecture: unexpected tensor {name}")
        out[name] = t.float()
    if "mapping.w_avg" not in out:
        raise MocohdError("unknown architecture: no mapping.w_avg in the StyleGAN3 generator")
    shapes = cfg.state_shapes()
    if set(out) != set(shapes):
        extra, missing = sorted(set(out) - set(shapes)), sorted(set(shapes) - set(out))
        raise MocohdError(
            f"unknown architecture: tensors differ from the StyleGAN3 config (unexpected {extra[:3]}, "
            f"missing {missing[:3]})"
        )
    for spec in specs:  # the designed filters must be those of the config: they decide what the layer does
        for key, taps, cutoff, half, radial in (
            ("up_filter", spec["up_taps"], spec["in_cutoff"], spec["in_half_width"], False),
            ("down_filter", spec["down_taps"], spec["out_cutoff"], spec["out_half_width"], spec["down_radial"]),
        ):
            name = f"synthesis.{spec['name']}.{key}"
            if name not in out:
                continue
            want = design_lowpass_filter(taps, cutoff, half * 2, spec["tmp_sampling_rate"], radial)
            if out[name].shape != want.shape or not torch.allclose(out[name], want, atol=1e-6):
                raise MocohdError(f"unknown architecture: {name} is not the low-pass filter its config designs")
    return cfg.to_dict(), out, {}
