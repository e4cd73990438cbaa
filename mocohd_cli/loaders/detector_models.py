"""The detectors of the metrics, by name: ``load_detector("i3d")``, ``load_detector("inception")``.

A detector is a model like any other: ``mocohd fetch i3d`` (or ``mocohd import
FILE --kind i3d``) converts the original file once into the store, and from
then on it is read from there, its weights hash checked on every load. Its
kind is its family (``i3d`` or ``inception``); the default name is the kind.
"""

from __future__ import annotations

import os

import torch

from .. import store
from ..detectors import FAMILIES, build_detector
from ..errors import MocohdError, UsageError
from ..formats import ConvertedModel, canonical, checks, read_any
from ..runtime import pick_device

WHAT = {"i3d": "the I3D detector of FVD", "inception": "the Inception-v3 detector of FID"}


def how_to_get(kind: str) -> str:
    """What a user runs to put the ``kind`` detector in the store (from its registry entry)."""
    entry = next((e for e in store.registry_entries(kind) if e.kind == kind), None)
    if entry is not None and not entry.repo_id and entry.url:
        return f"download {entry.url} and run `mocohd import FILE --name {kind} --kind {kind}`"
    return f"run `mocohd fetch {kind}` (or `mocohd import FILE --name {kind} --kind {kind}` for a local copy)"


def build_from(model: ConvertedModel, origin: str) -> torch.nn.Module:
    checks.check_shapes(
        model.kind, model.family, model.config, {k: tuple(v.shape) for k, v in model.tensors.items()}, origin
    )
    net = build_detector(model.family, model.config)
    checks.load_weights(net, model.tensors, model.family, origin)
    return net


def load_detector(
    kind: str, name_or_path: str | os.PathLike | None = None, device: str | torch.device = "cpu"
) -> torch.nn.Module:
    """The ``kind`` detector ('i3d' or 'inception') in eval mode, frozen, on ``device``.

    ``name_or_path``: a store name or a file (the original TorchScript / state dict is converted in
    memory); default: the model named like the kind, which ``mocohd fetch KIND`` puts in the store.
    ``net.identity`` holds its name and weights sha256 (what cached statistics are keyed by).
    """
    if kind not in FAMILIES:
        raise UsageError(f"unknown detector {kind!r} (known: {', '.join(FAMILIES)})")
    device = pick_device(device) if isinstance(device, str) else torch.device(device)
    name = kind if name_or_path is None else name_or_path
    try:
        r = store.resolve(name, kind=kind)
    except MocohdError as e:
        if name_or_path is None:  # the usual first-run case: say what to do
            raise MocohdError(f"{WHAT[kind]} is not in the store: {how_to_get(kind)}") from e
        raise
    model = read_any(r.path, kind=kind)
    net = build_from(model, str(r.path))
    net.identity = {"name": r.name, "weights_sha256": model.weights_sha256 or canonical.weights_sha256(model.tensors)}
    net.source = dict(model.source)
    net.requires_grad_(False)
    return net.eval().to(device)
