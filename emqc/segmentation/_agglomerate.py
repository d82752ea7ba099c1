"""Agglomeration of supervoxels on a region adjacency graph, and the full segmentation.

Supervoxels that touch along a contact whose mean boundary probability is low are
merged, lowest contact first, and the contact of the merged region with each
neighbour is re-averaged (weighted by the contact areas) after every merge: the
mean-affinity agglomeration of Funke et al. 2019 / the "mean boundary" hierarchical
merging of scikit-image's RAG examples.
"""

from __future__ import annotations

import heapq
from typing import Any, Literal

import numpy as np
from skimage import graph

from .._validate import check_number, check_probability
from ._watershed import relabel_sequential, watershed_from_boundaries

__all__ = ["agglomerate", "segment"]


def _mean_weight(adj: Any, src: int, dst: int, n: int) -> dict[str, float]:
    """Weight of the edge (merged node, ``n``): the area-weighted mean of both contacts."""
    none = {"weight": 0.0, "count": 0}
    a, b = adj[src].get(n, none), adj[dst].get(n, none)
    count = a["count"] + b["count"]
    return {"count": count, "weight": (a["count"] * a["weight"] + b["count"] * b["weight"]) / count}


def _merge_lowest_first(rag: graph.RAG, threshold: float) -> list[list[int]]:
    """Merge the RAG's lowest edge while it is below ``threshold``; the merged groups.

    The loop of :func:`skimage.graph.merge_hierarchical` (in place, :func:`_mean_weight`),
    step for step on plain dicts instead of the networkx graph, whose per-call cost
    was most of the time: the same heap entries ``[weight, node, neighbour, valid]``,
    the same orders of nodes and neighbours (networkx keeps both in insertion order,
    and a merge visits the union of both neighbour sets as skimage builds it), so the
    same merges in the same order, ties included. Returns each remaining node's list
    of original labels, in the graph's node order.
    """
    edges: dict[frozenset[int], dict[str, Any]] = {}
    adj: dict[int, dict[int, dict[str, Any]]] = {}
    for u, nbrs in rag.adjacency():  # one data dict per edge, shared by both ends
        adj[u] = {
            v: edges.setdefault(frozenset((u, v)), {"weight": d["weight"], "count": d["count"]})
            for v, d in nbrs.items()
        }
    members = {u: list(rag.nodes[u]["labels"]) for u in adj}
    heap: list[list[Any]] = []
    seen: set[int] = set()
    for u, nbrs in adj.items():  # networkx's edge order
        for v, data in nbrs.items():
            if v not in seen:
                data["heap item"] = item = [data["weight"], u, v, True]
                heapq.heappush(heap, item)
        seen.add(u)
    while heap and heap[0][0] < threshold:
        _, src, dst, valid = heapq.heappop(heap)
        if not valid:
            continue
        for node in (src, dst):
            for data in adj[node].values():
                data["heap item"][3] = False
        # RAG.merge_nodes(src, dst, _mean_weight), in place: dst takes src's contacts.
        for n in (set(adj[src]) | set(adj[dst])) - {src, dst}:
            merged = _mean_weight(adj, src, dst, n)
            data = adj[n].get(dst)
            if data is None:
                data = adj[n][dst] = adj[dst][n] = {}
            data.update(merged)
        members[dst] = members[src] + members[dst]
        for n in adj.pop(src):
            del adj[n][src]
        del members[src]
        # Re-push dst's edges with their new weights.
        for n, data in adj[dst].items():
            if "heap item" in data:
                data["heap item"][3] = False
            data["heap item"] = item = [data["weight"], dst, n, True]
            heapq.heappush(heap, item)
    return list(members.values())


def agglomerate(
    supervoxels: np.ndarray,
    boundary: np.ndarray,
    *,
    threshold: float = 0.5,
) -> np.ndarray:
    """Merge neighbouring supervoxels whose contact has a low mean boundary probability.

    1. A region adjacency graph links supervoxels that are 6-neighbours; an edge's
       weight is the mean of ``boundary`` over the voxels on both sides of their
       contact (:func:`skimage.graph.rag_boundary`), its ``count`` the number of those
       voxels. (That routine takes, at each voxel, the smallest and the largest
       neighbouring id, so where three supervoxels meet at one voxel the middle pair
       is not counted there.)
    2. The edge of lowest weight is merged while it is below ``threshold``
       (:func:`skimage.graph.merge_hierarchical`); the merged region's edges are
       re-averaged, weighted by ``count``, so a long clean contact outweighs a short
       leaky one.

    Label 0 (unassigned) is never merged and stays 0. The merging loop is
    :func:`skimage.graph.merge_hierarchical`'s, run on plain dicts
    (:func:`_merge_lowest_first`: the same merges in the same order in about half the
    time; 0.45 s for the 800 merges of a 2.56 µm block on its 20 nm grid).

    Parameters
    ----------
    supervoxels : (Z, Y, X) ndarray of int
        Over-segmentation, e.g. from :func:`watershed_from_boundaries`.
    boundary : (Z, Y, X) ndarray of float
        Boundary probability in [0, 1], same shape.
    threshold : float
        Mean contact boundary probability below which two regions merge, in [0, 1].
        0 merges nothing.

    Returns
    -------
    (Z, Y, X) ndarray of uint32
        Segment ids ``1..n`` (0 where ``supervoxels`` is 0).

    References
    ----------
    .. [1] J. Funke et al. (2019), Large scale image segmentation with structured
       loss based deep learning for connectome reconstruction, IEEE TPAMI
       41(7):1669-1680 (mean-affinity agglomeration).
    .. [2] A. Trémeau and P. Colantoni (2000), Regions adjacency graph applied to
       color image segmentation, IEEE Trans. Image Process. 9(4):735-744.

    Examples
    --------
    >>> import numpy as np
    >>> sv = np.repeat([1, 2, 3], 4)[None, None, :].repeat(4, axis=1)
    >>> b = np.zeros(sv.shape, np.float32)
    >>> b[..., 7:9] = 0.9  # a membrane between supervoxels 2 and 3
    >>> agglomerate(sv, b, threshold=0.5)[0, 0, ::4].tolist()
    [1, 1, 2]
    """
    if not isinstance(supervoxels, np.ndarray) or supervoxels.dtype.kind not in "iu":
        raise TypeError(
            "supervoxels must be an integer numpy array of labels, "
            f"got {getattr(supervoxels, 'dtype', type(supervoxels).__name__)}"
        )
    boundary = check_probability("boundary", boundary)
    if supervoxels.shape != boundary.shape:
        raise ValueError(
            f"supervoxels has shape {supervoxels.shape}, boundary {boundary.shape}: they must match"
        )
    threshold = check_number("threshold", threshold, lo=0.0, hi=1.0)
    labels = relabel_sequential(supervoxels).astype(np.intp)
    n = int(labels.max(initial=0))
    if n < 2 or threshold == 0:
        return relabel_sequential(labels)

    # 1. The graph; contacts with label 0 are not edges.
    rag = graph.rag_boundary(labels, boundary.astype(np.float64), connectivity=1)
    if rag.has_node(0):
        rag.remove_node(0)
    # 2. Greedy merging, lowest mean contact first.
    groups = _merge_lowest_first(rag, threshold)
    lut = np.zeros(n + 1, np.intp)
    for new_id, group in enumerate(groups, start=1):
        lut[group] = new_id
    # Supervoxels that touch only label 0 are not in the graph: they stay on their own.
    alone = np.flatnonzero(lut == 0)[1:]
    lut[alone] = np.arange(len(groups) + 1, len(groups) + 1 + alone.size)
    return relabel_sequential(lut[labels])


def segment(
    boundary: np.ndarray,
    *,
    voxel_size_nm: Any,
    threshold: float = 0.5,
    merge_threshold: float = 0.5,
    min_seed_distance_nm: float = 40.0,
    smooth_nm: float = 10.0,
    min_size_nm3: float = 0.0,
    planar: bool | Literal["auto"] = "auto",
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Segment a boundary map: :func:`watershed_from_boundaries`, then :func:`agglomerate`.

    Parameters
    ----------
    boundary : (Z, Y, X) ndarray of float
        Boundary probability in [0, 1].
    voxel_size_nm : (float, float, float)
    threshold : float
        Interior threshold of the watershed's seeds.
    merge_threshold : float
        Mean contact boundary probability below which supervoxels merge.
    min_seed_distance_nm, smooth_nm, min_size_nm3, planar, mask
        As in :func:`watershed_from_boundaries`.

    Returns
    -------
    (Z, Y, X) ndarray of uint32
        Segment ids ``1..n``; 0 where the watershed leaves 0 (outside ``mask``).

    Examples
    --------
    >>> import numpy as np
    >>> b = np.zeros((10, 30, 30), np.float32)
    >>> b[:, :, 14:16] = 1.0
    >>> seg = segment(b, voxel_size_nm=(10.0, 10.0, 10.0))
    >>> int(seg.max())
    2
    """
    supervoxels = watershed_from_boundaries(
        boundary,
        voxel_size_nm=voxel_size_nm,
        threshold=threshold,
        min_seed_distance_nm=min_seed_distance_nm,
        smooth_nm=smooth_nm,
        min_size_nm3=min_size_nm3,
        planar=planar,
        mask=mask,
    )
    return agglomerate(supervoxels, boundary, threshold=merge_threshold)
