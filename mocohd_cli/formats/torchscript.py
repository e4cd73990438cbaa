"""TorchScript archives (``torch.jit.save``) read as data, never run.

``torch.jit.load`` compiles and runs the Python-like code an archive carries;
a file from the internet is not trusted that far. We read the archive
ourselves instead. Its layout (PyTorch ``torch/csrc/jit/serialization``,
``export_module.cpp`` and ``import.cpp``; checked here against archives that
``torch.jit.script`` and ``torch.jit.trace`` write) is a zip with one top
folder:

    <top>/data.pkl           the module tree, pickled (protocol 2): each module is
                             GLOBAL '__torch__.<qualified class>' + NEWOBJ + BUILD
                             of its attribute dict, in the class's attribute order
                             (parameters and buffers first, then plain attributes
                             such as ``training``, then submodules)
    <top>/constants.pkl      a tuple of the tensor constants the code refers to
                             (``CONSTANTS.c0``); their storages in <top>/constants/
    <top>/data/<key>         raw little-endian bytes of one tensor storage
    <top>/code/**.py         the classes' TorchScript source (kept as text, never run;
                             ``.debug_pkl`` files beside it are never unpickled)
    <top>/version, byteorder

A tensor is ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
requires_grad, backward_hooks)`` whose storage is the persistent id
``('storage', torch.FloatStorage, key, location, numel)``; lists and dicts of
typed attributes go through ``torch.jit._pickle.build_intlist`` and its
siblings and ``restore_type_tag``. ``_Unpickler.find_class`` resolves only
those names, to our own implementations (a ``__torch__`` class becomes an
inert ``ScriptObject`` recording its qualified name and attribute dict;
nothing is imported); anything else stops the read before it is called.
Storage records are read with their sizes checked against what the tensors
claim, and the zip's CRCs checked.
"""

from __future__ import annotations

import collections
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import MocohdError, a
from .checks import PickledState, brief, check_storage

MAX_CODE_BYTES = 64 << 20  # all code text together; the I3D's is a few hundred KB
MAX_DIMS = 32


class ScriptObject(PickledState):
    """Inert stand-in for a pickled TorchScript object (a module or a script class):
    ``qualified_name`` ('__torch__.torch.nn.modules.conv.Conv3d') and ``state``,
    its attribute dict in pickle order (a non-dict ``__setstate__`` value is kept
    under '__state__'). Subclassed once per qualified name, so that NEWOBJ, which
    needs a class, can build it."""

    qualified_name = ""

    def __new__(cls, *args):
        if args:
            raise pickle.UnpicklingError(f"{cls.qualified_name} built with arguments")
        obj = super().__new__(cls)
        obj.state = {}
        return obj

    def __setstate__(self, state):
        self.state = dict(state) if isinstance(state, dict) else {"__state__": state}

    @property
    def class_name(self) -> str:
        return self.qualified_name.rpartition(".")[2]

    def __repr__(self) -> str:
        return f"<ScriptObject {self.qualified_name} {list(self.state)}>"


class _Storage:
    """A storage record read from the zip: its values as a 1-D tensor. Only persistent ids make
    these, so a tensor is always a view of a whole record."""

    def __init__(self, data: torch.Tensor):
        self.data = data


class _StorageType:
    """What ``torch.FloatStorage`` and its siblings stand for in a persistent id: a dtype."""

    def __init__(self, name: str, dtype: torch.dtype):
        self.name, self.dtype = name, dtype


_STORAGE_DTYPES = {
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}
_STORAGE_TYPES = {name: _StorageType(name, dtype) for name, dtype in _STORAGE_DTYPES.items()}


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *state):
    if not isinstance(data, torch.Tensor):
        raise pickle.UnpicklingError("a parameter without a tensor")
    return data  # a plain tensor: nothing here trains


def _typed_list(kind, items):
    if not isinstance(items, list) or not all(isinstance(v, kind) for v in items):
        raise pickle.UnpicklingError(f"malformed typed list (expected {kind})")
    return items


def _build_intlist(items):
    return _typed_list(int, items)


def _build_doublelist(items):
    return _typed_list(float, items)


def _build_boollist(items):
    return _typed_list(bool, items)


def _build_tensorlist(items):
    return _typed_list(torch.Tensor, items)


def _restore_type_tag(value, type_str=None):
    return value  # the tag ('Dict[str, float]') only types the container for TorchScript


def _device(name):
    if not isinstance(name, str):
        raise pickle.UnpicklingError("malformed device")
    return name  # a device attribute, kept as its name


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    """``torch._utils._rebuild_tensor_v2`` for our storages (1-D tensors), with the
    view checked to lie inside its storage."""
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("a tensor without a storage")
    storage = storage.data
    size, stride = tuple(size), tuple(stride)
    ints = (storage_offset, *size, *stride)
    if len(size) != len(stride) or len(size) > MAX_DIMS or not all(type(v) is int and v >= 0 for v in ints):
        raise pickle.UnpicklingError(f"malformed tensor size {size} / stride {stride} / offset {storage_offset}")
    numel = 1
    for n in size:
        numel *= n
    if numel:
        last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
        if last >= storage.numel():
            raise _Damaged(
                f"a tensor [{', '.join(map(str, size))}] reaches element {last:,} of a storage of "
                f"{storage.numel():,} (a damaged or hostile file)"
            )
    return storage.as_strided(size, stride, storage_offset)


_ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch.jit._pickle", "build_intlist"): _build_intlist,
    ("torch.jit._pickle", "build_doublelist"): _build_doublelist,
    ("torch.jit._pickle", "build_boollist"): _build_boollist,
    ("torch.jit._pickle", "build_tensorlist"): _build_tensorlist,
    ("torch.jit._pickle", "restore_type_tag"): _restore_type_tag,
    ("torch", "device"): _device,
    **{("torch", name): st for name, st in _STORAGE_TYPES.items()},
}


class _Refused(Exception):
    """The archive asks for something we never do; the message says what."""


class _Damaged(_Refused):
    """A storage record that is missing, short or corrupt; the message says which."""


class _Unpickler(pickle.Unpickler):
    """Resolves the allow-list only; storages come from ``<top>/<folder>/<key>`` of the zip."""

    def __init__(self, file, archive: zipfile.ZipFile, top: str, folder: str, pkl: str, file_size: int):
        super().__init__(file)
        self.zip, self.top, self.folder, self.pkl, self.file_size = archive, top, folder, pkl, file_size
        self.classes: dict[str, type] = {}
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str):
        if module == "__torch__" or module.startswith("__torch__."):
            qualified = f"{module}.{name}"
            if qualified not in self.classes:
                self.classes[qualified] = type("ScriptObject", (ScriptObject,), {"qualified_name": qualified})
            return self.classes[qualified]
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise _Refused(
                f"{self.pkl} asks for {module}.{name}, which a TorchScript archive of weights never needs"
            ) from None

    def persistent_load(self, pid):
        if (
            not isinstance(pid, tuple)
            or len(pid) != 5
            or pid[0] != "storage"
            or not isinstance(pid[1], _StorageType)
            or not isinstance(pid[2], str)
            or type(pid[4]) is not int
            or pid[4] < 0
        ):
            raise _Refused(f"{self.pkl} holds a persistent id other than a tensor storage: {str(pid)[:80]}")
        _, stype, key, _location, numel = pid  # the location ('cpu', 'cuda:0') is ignored: all is read to the CPU
        if key in self.storages:
            st = self.storages[key]
            if st.data.dtype != stype.dtype or st.data.numel() != numel:
                raise _Refused(f"storage record {key!r} is claimed as two different storages")
            return st
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", key) or key in (".", ".."):
            raise _Refused(f"{self.pkl} names a storage record {key[:40]!r}, which is not a plain record name")
        self.storages[key] = st = _Storage(self._read_storage(key, stype.dtype, numel))
        return st

    def _read_storage(self, key: str, dtype: torch.dtype, numel: int) -> torch.Tensor:
        name = f"{self.top}/{self.folder}/{key}"
        try:
            info = self.zip.getinfo(name)
        except KeyError:
            raise _Damaged(f"storage record {name} is missing (a damaged archive)") from None
        itemsize = torch.empty((), dtype=dtype).element_size()
        need = numel * itemsize
        if info.file_size < need:
            raise _Damaged(
                f"storage record {name} holds {info.file_size:,} bytes but its tensors need "
                f"{need:,} (a truncated or damaged archive)"
            )
        if info.file_size > self.file_size:
            raise _Damaged(
                f"storage record {name} claims {info.file_size:,} bytes, more than the whole file "
                f"({self.file_size:,}): a damaged or hostile archive"
            )
        try:
            data = self.zip.read(info)
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError, RuntimeError) as e:
            raise _Damaged(f"storage record {name} cannot be read (damaged or truncated): {brief(e)}") from e
        if len(data) < need:
            raise _Damaged(f"storage record {name} holds {len(data):,} bytes but its tensors need {need:,}")
        if numel == 0:
            return torch.empty(0, dtype=dtype)
        return torch.frombuffer(bytearray(data[:need]), dtype=dtype)


@dataclass
class Archive:
    """What a TorchScript archive holds, as data.

    ``root``: the top module (a ``ScriptObject``); ``constants``: the tensors of
    constants.pkl, in order; ``code``: source file name under ``code/``
    ('__torch__/torch/nn/modules/conv.py') -> text; ``version``: the archive's
    format version text."""

    path: Path
    root: ScriptObject
    constants: list[torch.Tensor] = field(default_factory=list)
    code: dict[str, str] = field(default_factory=dict)
    version: str = ""

    def walk(self) -> list[tuple[str, object]]:
        """(dotted path, value) of every attribute under the root, depth first in pickle
        order; lists, tuples and dicts are entered ('.0', '.key'); each object once."""
        out: list[tuple[str, object]] = []
        seen: set[int] = set()
        stack: list[tuple[str, object]] = [("", self.root)]
        while stack:
            path, obj = stack.pop()
            out.append((path, obj))
            if isinstance(obj, torch.Tensor) or id(obj) in seen:
                continue
            if isinstance(obj, (ScriptObject, dict, list, tuple)):
                seen.add(id(obj))
            if isinstance(obj, ScriptObject):
                items = list(obj.state.items())
            elif isinstance(obj, dict):
                items = list(obj.items())
            elif isinstance(obj, (list, tuple)):
                items = list(enumerate(obj))
            else:
                continue
            for k, v in reversed(items):
                if isinstance(v, (torch.Tensor, ScriptObject, dict, list, tuple)):
                    stack.append((f"{path}.{k}" if path else str(k), v))
        return out

    def named_tensors(self) -> list[tuple[str, torch.Tensor]]:
        """(dotted path, tensor) of every tensor in the module tree, in pickle order
        (a module's parameters and buffers, then its submodules, recursively)."""
        return [(p, v) for p, v in self.walk() if isinstance(v, torch.Tensor)]

    def module_types(self) -> dict[str, str]:
        """dotted path ('' for the root) -> qualified class name of every module and script object."""
        return {p: v.qualified_name for p, v in self.walk() if isinstance(v, ScriptObject)}

    def objects(self) -> dict[str, ScriptObject]:
        """dotted path -> the ``ScriptObject`` there."""
        return {p: v for p, v in self.walk() if isinstance(v, ScriptObject)}

    def class_source(self, qualified_name: str) -> str | None:
        """The TorchScript source text of one class ('__torch__.a.b.C' is class C of
        code/__torch__/a/b.py), or None when the archive has none."""
        module, _, name = qualified_name.rpartition(".")
        text = self.code.get(module.replace(".", "/") + ".py")
        if text is None:
            return None
        m = re.search(rf"^class {re.escape(name)}\b.*?(?=^\S|\Z)", text, re.M | re.S)
        return m.group(0) if m else None


def _top_folder(names: list[str]) -> str | None:
    """The top folder that holds ``data.pkl``, or None."""
    tops = [n[: -len("/data.pkl")] for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    return tops[0] if len(tops) == 1 else None


def is_torchscript(path: str | Path) -> bool:
    """A zip holding ``<top>/data.pkl`` and ``<top>/code/`` or ``<top>/constants.pkl``
    (``torch.save`` zips have data.pkl only)."""
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return False
    top = _top_folder(names)
    if top is None:
        return False
    return f"{top}/constants.pkl" in names or any(n.startswith(f"{top}/code/") for n in names)


def _unpickle(z: zipfile.ZipFile, top: str, pkl: str, folder: str, file_size: int, path) -> object:
    name = f"{top}/{pkl}"
    if z.getinfo(name).file_size > 2 * file_size + (1 << 20):  # torch stores records uncompressed
        raise MocohdError(
            f"{path}: {pkl} claims {z.getinfo(name).file_size:,} bytes, far more than the file "
            "(a damaged or hostile archive)"
        )
    try:
        with z.open(name) as f:
            return _Unpickler(f, z, top, folder, pkl, file_size).load()
    except _Damaged as e:
        raise MocohdError(f"{path}: {e}") from None
    except _Refused as e:
        raise MocohdError(f"{path}: refused: {e}; nothing in it was executed") from None
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
        OverflowError,
        RecursionError,
        zipfile.BadZipFile,
        OSError,
    ) as e:
        raise MocohdError(
            f"{path}: {pkl} is not a readable TorchScript pickle (corrupt or truncated?): {brief(e)}"
        ) from e


def read_archive(path: str | Path) -> Archive:
    """Everything a TorchScript archive holds, as data (see the module docstring);
    one-line ``MocohdError`` for anything damaged or outside the allow-list."""
    path = Path(path)
    try:
        file_size = path.stat().st_size
        z = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise MocohdError(f"{path}: no such file") from None
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise MocohdError(f"{path}: not a readable TorchScript archive (a truncated or damaged zip): {brief(e)}") from e
    with z:
        names = z.namelist()
        top = _top_folder(names)
        if top is None:
            raise MocohdError(f"{path}: not a TorchScript archive (no <folder>/data.pkl in the zip)")
        order = _read_text(z, f"{top}/byteorder", path, 16)
        if order is not None and order.strip() not in ("", "little"):
            raise MocohdError(
                f"{path}: its tensors are stored {order.strip()}-endian; only little-endian archives are read"
            )
        root = _unpickle(z, top, "data.pkl", "data", file_size, path)
        if not isinstance(root, ScriptObject):
            raise MocohdError(f"{path}: data.pkl holds {a(type(root).__name__)}, not a TorchScript module")
        constants = []
        if f"{top}/constants.pkl" in names:
            held = _unpickle(z, top, "constants.pkl", "constants", file_size, path)
            if not isinstance(held, tuple):
                raise MocohdError(f"{path}: constants.pkl holds {a(type(held).__name__)}, not a tuple")
            constants = [c for c in held if isinstance(c, torch.Tensor)]
        code, total = {}, 0
        prefix = f"{top}/code/"
        for info in z.infolist():
            if info.filename.startswith(prefix) and info.filename.endswith(".py") and not info.is_dir():
                total += info.file_size
                if total > MAX_CODE_BYTES:
                    raise MocohdError(
                        f"{path}: its code text is larger than {MAX_CODE_BYTES >> 20} MB (a damaged or hostile archive)"
                    )
                code[info.filename[len(prefix) :]] = _read_text(z, info.filename, path, MAX_CODE_BYTES)
        version = (_read_text(z, f"{top}/version", path, 64) or "").strip()
    check_storage({"data.pkl": root, "constants.pkl": constants}, file_size, path)
    return Archive(path, root, constants, code, version)


def _read_text(z: zipfile.ZipFile, name: str, path, limit: int) -> str | None:
    """A text record of the zip (None when absent), read as text only."""
    try:
        info = z.getinfo(name)
    except KeyError:
        return None
    if info.file_size > limit:
        raise MocohdError(f"{path}: {name} is larger than {limit:,} bytes (a damaged or hostile archive)")
    try:
        return z.read(info).decode("utf-8", errors="replace")
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError, RuntimeError) as e:
        raise MocohdError(f"{path}: {name} cannot be read (damaged or truncated): {brief(e)}") from e


__all__ = ["Archive", "ScriptObject", "is_torchscript", "read_archive"]
