"""emqc: preservation-quality scoring of brain tissue from 3D electron microscopy.

The library is layered (see README.md, "Architecture"):

- pure numerical cores on numpy arrays: :mod:`emqc.pyramid`, :mod:`emqc.intensity`,
  :mod:`emqc.sampling`, :mod:`emqc.synth`;
- storage with integrity: :mod:`emqc.sources` (readers), :mod:`emqc.omezarr`,
  :mod:`emqc.manifest`, :mod:`emqc.volume`;
- Dask pipelines: :mod:`emqc.ingest`;
- thin front ends: :mod:`emqc.cli` and the napari plugin in ``plugins/``.

Public entry points are imported lazily so that ``import emqc`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "ingest": "emqc.ingest",
    "IngestResult": "emqc.ingest",
    "open_volume": "emqc.volume",
    "Volume": "emqc.volume",
    "verify_volume": "emqc.manifest",
    "sample_volume": "emqc.sampling.volume",
    "open_source": "emqc.sources",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'emqc' has no attribute {name!r}")
