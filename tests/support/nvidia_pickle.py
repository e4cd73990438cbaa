"""Write tiny network pickles in NVIDIA's stylegan2-ada-pytorch layout.

The real files are made by ``pickle.dump`` of modules decorated with
``torch_utils.persistence``: every network becomes a call to
``torch_utils.persistence._reconstruct_persistent_obj(meta)`` whose ``meta``
holds the module's source code, class name and ``__dict__``; constructor
arguments are ``dnnlib.util.EasyDict``s; tensors go through PyTorch's own
reductions. We produce the same opcodes and global names by registering
stand-in modules under those names while pickling (and removing them after),
so the reader under test never sees anything of ours.
"""

from __future__ import annotations

import collections
import contextlib
import pickle
import sys
import types

import numpy as np
import torch

from mocohd_cli.generators import base, stylegan2 as sg2
from mocohd_cli.ops import fir_filter_2d

CLASS_NAMES = {
    sg2.StyleGAN2Generator: "Generator",
    base.MappingNetwork: "MappingNetwork",
    base.FullyConnected: "FullyConnectedLayer",
    sg2.SynthesisNetwork: "SynthesisNetwork",
    sg2.SynthesisBlock: "SynthesisBlock",
    sg2.SynthesisLayer: "SynthesisLayer",
    sg2.ToRGB: "ToRGBLayer",
}

# What a hostile file would run if a loader executed module_src.
HOSTILE_SRC = "import pathlib\npathlib.Path({marker!r}).write_text('pwned')\n"


class _Persistent:
    """Pickles as _reconstruct_persistent_obj(meta), like NVIDIA's persistence decorator."""

    def __init__(self, meta):
        self.meta = meta

    def __reduce__(self):
        return (sys.modules["torch_utils.persistence"]._reconstruct_persistent_obj, (self.meta,))


@contextlib.contextmanager
def nvidia_modules():
    """Temporarily register torch_utils.persistence and dnnlib.util under their real names."""
    names = ["torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util"]
    saved = {n: sys.modules.get(n) for n in names}
    persistence = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta):  # never called: we only pickle
        raise AssertionError("stand-in")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    util = types.ModuleType("dnnlib.util")
    util.EasyDict = type("EasyDict", (dict,), {"__module__": "dnnlib.util"})
    sys.modules.update(
        {
            "torch_utils": types.ModuleType("torch_utils"),
            "torch_utils.persistence": persistence,
            "dnnlib": types.ModuleType("dnnlib"),
            "dnnlib.util": util,
        }
    )
    try:
        yield util.EasyDict
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


def _persist(module: torch.nn.Module, easydict, module_src: str, class_name=None, extra_state=None) -> _Persistent:
    state = {
        "training": False,
        "_parameters": collections.OrderedDict((k, v) for k, v in module._parameters.items()),
        "_buffers": collections.OrderedDict((k, v) for k, v in module._buffers.items()),
        "_modules": collections.OrderedDict((k, _persist(m, easydict, module_src)) for k, m in module._modules.items()),
        "_init_args": (),
        "_init_kwargs": easydict(),
    }
    cls = type(module)
    if cls is sg2.StyleGAN2Generator:
        c = module.cfg
        state.update(z_dim=c.z_dim, c_dim=0, w_dim=c.w_dim, img_resolution=c.resolution, img_channels=c.img_channels)
        state["_init_kwargs"] = easydict(
            z_dim=c.z_dim,
            c_dim=0,
            w_dim=c.w_dim,
            img_resolution=c.resolution,
            img_channels=c.img_channels,
            mapping_kwargs=easydict(num_layers=c.mapping_layers),
            synthesis_kwargs=easydict(
                channel_base=c.channel_base, channel_max=c.channel_max, num_fp16_res=0, conv_clamp=c.conv_clamp
            ),
        )
    elif cls is base.MappingNetwork:
        state.update(num_layers=module.num_layers, w_avg_beta=0.995, num_ws=None)
    elif cls is base.FullyConnected:
        state.update(
            activation=module.activation,
            lr_multiplier=module.bias_gain,
            weight_gain=module.weight_gain,
            bias_gain=module.bias_gain,
        )
    elif cls is sg2.SynthesisBlock:
        state.update(architecture="skip", resolution=module.resolution, num_conv=module.num_conv, num_torgb=1)
        state["_buffers"]["resample_filter"] = fir_filter_2d()
    elif cls is sg2.SynthesisLayer:
        state.update(
            up=module.up, resolution=module.resolution, conv_clamp=module.conv_clamp, activation="lrelu", use_noise=True
        )
        state["_buffers"] = collections.OrderedDict(
            [("resample_filter", fir_filter_2d()), ("noise_const", module.noise_const)]
        )
    elif cls is sg2.ToRGB:
        state.update(conv_clamp=module.conv_clamp, weight_gain=module.weight_gain)
    state.update(extra_state or {})
    meta = dict(type="class", version=4, module_src=module_src, class_name=class_name or CLASS_NAMES[cls], state=state)
    return _Persistent(meta)


def write_nvidia_pickle(
    path, G: sg2.StyleGAN2Generator, marker: str = "/nonexistent/marker", stylegan3: bool = False
) -> None:
    """Pickle ``G`` as {'G': ..., 'D': None, 'G_ema': ...} in NVIDIA's layout.

    ``module_src`` is a program that writes ``marker``: loading must never run it.
    With ``stylegan3=True`` the synthesis network gets StyleGAN3's SynthesisInput.
    """
    src = HOSTILE_SRC.format(marker=str(marker))
    G = G.to("cpu")
    with nvidia_modules() as easydict:
        g = _persist(G, easydict, src)
        if stylegan3:
            synthesis = g.meta["state"]["_modules"]["synthesis"]
            inp = _persist(torch.nn.Module(), easydict, src, class_name="SynthesisInput")
            synthesis.meta["state"]["_modules"] = collections.OrderedDict([("input", inp)])
        data = {
            "G": g,
            "D": None,
            "G_ema": g,
            "training_set_kwargs": easydict(resolution=G.resolution),
            "augment_pipe": None,
        }
        with open(path, "wb") as f:
            pickle.dump(data, f)


class HostileReduce:
    """An object whose unpickling would run os.system (writing ``marker``)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


# ----------------------------------------------------------------------------
# StyleGAN3 (NVlabs/stylegan3's training/networks_stylegan3.py layout)


def _sg3_state(module, easydict, src, class_name, attrs=None, init_kwargs=None, children=None):
    state = {
        "training": False,
        "_parameters": collections.OrderedDict(module._parameters.items()),
        "_buffers": collections.OrderedDict(module._buffers.items()),  # unset filters stay None, as NVIDIA's
        "_modules": collections.OrderedDict(children or {}),
        "_init_args": (),
        "_init_kwargs": easydict(init_kwargs or {}),
    }
    state.update(attrs or {})
    return _Persistent(dict(type="class", version=6, module_src=src, class_name=class_name, state=state))


def _sg3_fc(fc, easydict, src):
    return _sg3_state(
        fc,
        easydict,
        src,
        "FullyConnectedLayer",
        dict(
            in_features=fc.weight.shape[1],
            out_features=fc.weight.shape[0],
            activation=fc.activation,
            weight_gain=np.float64(fc.weight_gain),
            bias_gain=fc.bias_gain,
        ),
    )


def write_stylegan3_pickle(
    path, G, marker: str = "/nonexistent/marker", c_dim: int = 0, extra_kwargs=None, layer_attrs=None
) -> None:
    """Pickle a ``StyleGAN3Generator`` as {'G': ..., 'D': None, 'G_ema': ...} in NVIDIA's StyleGAN3
    layout: constructor arguments as ``_init_kwargs`` (``extra_kwargs`` added to them), the
    attributes NVIDIA's modules keep (numpy sizes and rates), filters and magnitude averages as
    buffers. ``c_dim`` > 0 claims a conditional generator; ``layer_attrs`` overrides attributes
    of every synthesis layer. ``module_src`` is a program that writes ``marker``."""
    src = HOSTILE_SRC.format(marker=str(marker))
    G = G.to("cpu")
    c = G.cfg
    synthesis_kwargs = dict(
        channel_base=c.channel_base,
        channel_max=c.channel_max,
        num_layers=c.num_layers,
        num_critical=c.num_critical,
        first_cutoff=c.first_cutoff,
        first_stopband=c.first_stopband,
        last_stopband_rel=c.last_stopband_rel,
        margin_size=c.margin_size,
        output_scale=c.output_scale,
        num_fp16_res=c.num_fp16_res,
        conv_kernel=c.conv_kernel,
        filter_size=c.filter_size,
        lrelu_upsampling=c.lrelu_upsampling,
        use_radial_filters=c.use_radial_filters,
        conv_clamp=c.conv_clamp,
        magnitude_ema_beta=c.magnitude_ema_beta,
    )
    synthesis_kwargs.update(extra_kwargs or {})
    with nvidia_modules() as easydict:
        m = G.mapping
        mapping = _sg3_state(
            m,
            easydict,
            src,
            "MappingNetwork",
            dict(
                z_dim=c.z_dim,
                c_dim=c_dim,
                w_dim=c.w_dim,
                num_ws=c.num_ws,
                num_layers=m.num_layers,
                w_avg_beta=c.w_avg_beta,
            ),
            dict(
                z_dim=c.z_dim,
                c_dim=c_dim,
                w_dim=c.w_dim,
                num_ws=c.num_ws,
                num_layers=c.mapping_layers,
                w_avg_beta=c.w_avg_beta,
            ),
            {f"fc{i}": _sg3_fc(getattr(m, f"fc{i}"), easydict, src) for i in range(m.num_layers)},
        )
        inp = G.synthesis.input
        spec_in = c.input_spec()
        children = {
            "input": _sg3_state(
                inp,
                easydict,
                src,
                "SynthesisInput",
                dict(
                    w_dim=c.w_dim,
                    channels=inp.channels,
                    size=np.array([inp.size] * 2),
                    sampling_rate=np.float64(spec_in["sampling_rate"]),
                    bandwidth=np.float64(spec_in["bandwidth"]),
                ),
                dict(
                    w_dim=c.w_dim,
                    channels=inp.channels,
                    size=inp.size,
                    sampling_rate=np.float64(spec_in["sampling_rate"]),
                    bandwidth=np.float64(spec_in["bandwidth"]),
                ),
                {"affine": _sg3_fc(inp.affine, easydict, src)},
            )
        }
        for layer in G.synthesis.conv_layers():
            s = layer.spec
            attrs = dict(
                w_dim=c.w_dim,
                is_torgb=s["torgb"],
                is_critically_sampled=s["critical"],
                use_fp16=False,
                in_channels=s["in_channels"],
                out_channels=s["out_channels"],
                in_size=np.array([s["in_size"]] * 2),
                out_size=np.array([s["out_size"]] * 2),
                in_sampling_rate=s["in_sampling_rate"],
                out_sampling_rate=s["out_sampling_rate"],
                tmp_sampling_rate=s["tmp_sampling_rate"],
                in_cutoff=np.float64(s["in_cutoff"]),
                out_cutoff=np.float64(s["out_cutoff"]),
                conv_kernel=s["conv_kernel"],
                conv_clamp=c.conv_clamp,
                magnitude_ema_beta=c.magnitude_ema_beta,
                up_factor=s["up"],
                up_taps=s["up_taps"],
                down_factor=s["down"],
                down_taps=s["down_taps"],
                down_radial=s["down_radial"],
                padding=list(s["padding"]),
            )
            attrs.update(layer_attrs or {})
            children[s["name"]] = _sg3_state(
                layer, easydict, src, "SynthesisLayer", attrs, {}, {"affine": _sg3_fc(layer.affine, easydict, src)}
            )
        synthesis = _sg3_state(
            G.synthesis,
            easydict,
            src,
            "SynthesisNetwork",
            dict(
                w_dim=c.w_dim,
                num_ws=c.num_ws,
                img_resolution=c.resolution,
                img_channels=c.img_channels,
                num_layers=c.num_layers,
                num_critical=c.num_critical,
                margin_size=c.margin_size,
                output_scale=c.output_scale,
                num_fp16_res=c.num_fp16_res,
                layer_names=list(G.synthesis.layer_names),
            ),
            dict(w_dim=c.w_dim, img_resolution=c.resolution, img_channels=c.img_channels, **synthesis_kwargs),
            children,
        )
        g = _sg3_state(
            G,
            easydict,
            src,
            "Generator",
            dict(
                z_dim=c.z_dim,
                c_dim=c_dim,
                w_dim=c.w_dim,
                img_resolution=c.resolution,
                img_channels=c.img_channels,
                num_ws=c.num_ws,
            ),
            dict(
                z_dim=c.z_dim,
                c_dim=c_dim,
                w_dim=c.w_dim,
                img_resolution=c.resolution,
                img_channels=c.img_channels,
                mapping_kwargs=easydict(num_layers=c.mapping_layers),
                **synthesis_kwargs,
            ),
            {"synthesis": synthesis, "mapping": mapping},
        )
        data = {
            "G": g,
            "D": None,
            "G_ema": g,
            "training_set_kwargs": easydict(resolution=c.resolution),
            "augment_pipe": None,
        }
        with open(path, "wb") as f:
            pickle.dump(data, f)
