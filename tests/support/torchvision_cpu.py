"""Import torchvision (and so pytorch-fid) next to a CPU-only torch; import this module first.

pytorch-fid, the reference our FID is tested against, imports torchvision for
its Inception3 classes. The PyPI torchvision wheel is built against the CUDA
torch, so next to the CPU build of torch its import fails while registering
fake/autograd kernels for its C operators (``torchvision._meta_registrations``
and ``torchvision._autograd_registrations`` raise "operator torchvision::nms
does not exist"). The Inception3 Python code never calls those operators, so
when the normal import fails, the two registration modules are replaced by
empty ones and torchvision is imported again. A torchvision that matches
torch is imported untouched.
"""

from __future__ import annotations

import sys
import types

_STUBBED = ("torchvision._meta_registrations", "torchvision._autograd_registrations")

try:
    import torchvision

    STUBBED = False
except (RuntimeError, ImportError, OSError):
    # drop what the failed import left half-initialised, then retry without the registrations
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    for name in _STUBBED:
        sys.modules[name] = types.ModuleType(name)
    import torchvision  # noqa: F401 - imported for its effect (the retry)

    STUBBED = True
