"""Import torchvision on a torch build its compiled operators were not made for.

The torchvision wheel from the package registry is a CUDA build. Beside a CPU-only torch its
C++ extension (``torchvision._C``) cannot load, and ``import torchvision`` then fails in
``torchvision/_meta_registrations.py``, which registers fake (meta) kernels for the operators
``torchvision::nms`` and ``torchvision::qnms`` and so needs their schemas to exist:

    RuntimeError: operator torchvision::nms does not exist

The models used here (MViTv2-S) are pure Python and need none of the compiled operators.
:func:`import_torchvision` therefore retries the import after declaring just those two schemas
in a ``torchvision`` library fragment, without kernels: the box operators stay unusable
(calling them raises), everything else works. Where the extension loads (a matching CUDA
install), the first import succeeds and nothing is declared.
"""

from __future__ import annotations

import logging
from types import ModuleType

import torch

log = logging.getLogger(__name__)

# nms as torchvision's C++ declares it, qnms with the arguments its fake kernel takes; only
# their existence matters to the import.
_MISSING_OP_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}

# A Library object unregisters its definitions when garbage-collected: keep it for the process.
_schema_fragment: torch.library.Library | None = None


def _declare_missing_op_schemas() -> None:
    """Declare the torchvision operator schemas the import needs, unless they exist already."""
    global _schema_fragment
    missing = {
        name: schema
        for name, schema in _MISSING_OP_SCHEMAS.items()
        if not hasattr(torch.ops.torchvision, name)
    }
    if not missing:
        return
    if _schema_fragment is None:
        _schema_fragment = torch.library.Library("torchvision", "FRAGMENT")
    for schema in missing.values():
        _schema_fragment.define(schema)
    log.info(
        "torchvision's compiled operators are unavailable; declared schemas for %s "
        "(without kernels) so that its pure-Python models import",
        sorted(missing),
    )


def import_torchvision() -> ModuleType:
    """Return the ``torchvision`` module, declaring missing operator schemas if needed.

    Tries a plain import first. Only when it fails because a ``torchvision::`` operator does
    not exist (its compiled extension did not load) are the ``nms``/``qnms`` schemas declared
    and the import repeated. Any other error propagates. Safe to call any number of times.
    """
    try:
        import torchvision
    except RuntimeError as error:
        if "torchvision::" not in str(error):
            raise
        _declare_missing_op_schemas()
        import torchvision
    return torchvision
