"""Reader: an emqc OME-Zarr volume (its pyramid) or a score map (one heat-map layer per score)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["get_reader"]


def _is_volume(path: Path) -> bool:
    return (path / "emqc-manifest.json").is_file()


def _is_score_map(path: Path) -> bool:
    from emqc.scoring._scoremap import SCORE_MAP_FORMAT

    try:
        attrs = json.loads((path / "zarr.json").read_text()).get("attributes", {})
    except (OSError, ValueError):
        return False
    return isinstance(attrs, dict) and attrs.get("emqc", {}).get("format") == SCORE_MAP_FORMAT


def get_reader(path: Any):  # type: ignore[no-untyped-def]
    """napari's reader hook: a function for an emqc volume or score map, else None."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    p = Path(path)
    if p.is_dir() and _is_volume(p):
        return _read_volume
    if p.is_dir() and _is_score_map(p):
        return _read_score_map
    return None


def _read_volume(path: Any) -> list[tuple]:
    """The volume's pyramid as one multiscale image layer, scaled in nm (checked whole first)."""
    from emqc import open_volume

    p = Path(path[0] if isinstance(path, list) else path)
    vol = open_volume(p)
    levels = [vol.to_dask(level) for level in range(vol.n_levels)]
    meta = {"name": p.name.removesuffix(".ome.zarr"), "scale": tuple(vol.voxel_size_nm),
            "multiscale": len(levels) > 1, "contrast_limits": (0, 255),
            "metadata": {"emqc_root_digest": vol.root_digest}}  # fmt: skip
    return [(levels if len(levels) > 1 else levels[0], meta, "image")]


def _read_score_map(path: Any) -> list[tuple]:
    """One heat-map layer per score channel of ``score_map.ome.zarr``, placed in nm."""
    import numpy as np
    import zarr

    from emqc.scoring._scoremap import MAP_CHANNELS

    p = Path(path[0] if isinstance(path, list) else path)
    group = zarr.open_group(str(p), mode="r")
    ms = group.attrs["ome"]["multiscales"][0]
    ds = ms["datasets"][0]
    arr = np.asarray(group[ds["path"]])
    scale, translate = [1.0] * arr.ndim, [0.0] * arr.ndim
    for t in ds.get("coordinateTransformations", []):
        if t["type"] == "scale":
            scale = t["scale"]
        elif t["type"] == "translation":
            translate = t["translation"]
    layers = []
    for i, name in enumerate(MAP_CHANNELS):
        layers.append((arr[i], {"name": f"score: {name}", "scale": tuple(scale[1:]),
                                "translate": tuple(translate[1:]), "colormap": "magma",
                                "contrast_limits": (0.0, 1.0), "opacity": 0.5,
                                "blending": "additive", "visible": i == 0}, "image"))  # fmt: skip
    return layers
