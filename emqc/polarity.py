"""Contrast polarity: does a block show dark membranes (as the networks expect) or bright ones?

Transmission EM and most FIB-SEM stacks show membranes dark on pale cytoplasm;
backscattered-electron images of heavy-metal-stained blocks (serial block-face SEM,
some FIB-SEM setups) show them bright unless the stack was inverted at export [1]_.
The networks were trained on dark membranes (with 20 % inverted crops, which they
handle worse), so a bright-membrane block would be scored low for the wrong reason.

Image statistics do not tell the polarity of neuropil apart from damage (edema's pale
swollen processes and voids move the intensity skew and the dark-versus-bright ridge
response as much as inversion does), but the network itself does: on a block in its
own polarity it marks membranes confidently, on the inverted block it hesitates.
:meth:`emqc.models.Predictor.polarity_margin` compares the mean confidence ``|2p - 1|`` of the membrane map
for the block as recorded and inverted (on a central probe of at most
:data:`PROBE_EDGE` voxels per axis); the block is inverted only when the inverted
polarity is clearly more confident (margin below ``-POLARITY_MARGIN``). A block whose
margin lies within ``POLARITY_MARGIN`` of 0 shows membranes too faintly to tell (for
example severe loss of neuropil contrast): it is kept as recorded and flagged
``polarity_uncertain``.

References
----------
.. [1] W. Denk, H. Horstmann (2004), Serial block-face scanning electron microscopy to
   reconstruct three-dimensional tissue nanostructure, PLoS Biol. 2:e329.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = [
    "POLARITIES",
    "POLARITY_MARGIN",
    "PROBE_EDGE",
    "Polarity",
    "Prediction",
    "membrane_confidence",
    "inverted",
    "probe_box",
]

#: Accepted polarity settings: detect it, or declare it (``dark``: membranes darker
#: than cytoplasm, TEM-like, used as recorded; ``bright``: inverted before scoring).
POLARITIES = ("auto", "dark", "bright")
#: Largest probe (voxels at working resolution, per axis) the polarity is judged on:
#: 12.5 % of a 256³ block, the whole of a block up to 128³.
PROBE_EDGE = 128
#: Least |margin| (mean membrane confidence, as recorded minus inverted) that decides the
#: polarity; chosen on the medulla cube's training part (see the model card).
POLARITY_MARGIN = 0.05


@dataclass(frozen=True)
class Polarity:
    """How a block's contrast polarity was settled.

    Attributes
    ----------
    inverted : bool
        The block was inverted (``255 - raw``) before the networks saw it.
    source : str
        ``"detected"`` (by the rule above) or ``"declared"`` by the user.
    margin : float
        Mean membrane confidence as recorded minus inverted (NaN when declared).
    uncertain : bool
        ``|margin| < POLARITY_MARGIN``: kept as recorded because the network could not tell.
    """

    inverted: bool
    source: str
    margin: float = float("nan")
    uncertain: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Prediction(dict):  # type: ignore[type-arg]
    """Probability maps by head (a plain ``dict``), with the :class:`Polarity` they were made in."""

    polarity: Polarity | None = None


def membrane_confidence(probability: np.ndarray) -> float:
    """Mean ``|2p - 1|`` of a probability map: 0 undecided everywhere, 1 certain everywhere."""
    return float(np.mean(np.abs(2.0 * probability.astype(np.float32) - 1.0)))


def probe_box(shape: tuple[int, ...], *, dims: int, edge: int = PROBE_EDGE) -> tuple[slice, ...]:
    """The central box of ``shape`` at most ``edge`` voxels per axis (2D: in-plane, 4 sections)."""
    edges = [min(n, edge) for n in shape]
    if dims == 2:
        edges[0] = min(shape[0], 4)
    return tuple(slice((n - e) // 2, (n - e) // 2 + e) for n, e in zip(shape, edges, strict=True))


def inverted(raw: np.ndarray) -> np.ndarray:
    """``raw`` with its contrast inverted (``255 - raw``; uint8 only, as emqc stores volumes)."""
    if raw.dtype != np.uint8:
        raise TypeError(f"raw must be uint8 to invert its contrast, got {raw.dtype}")
    return np.subtract(np.uint8(255), raw)
