"""Per-block preservation scores, and imaging quality, from probability maps: pure numpy.

Each function takes the maps of one block as ``(Z, Y, X)`` arrays (probabilities
float32 in [0, 1], ``raw`` the EM image), parameters keyword-only with physical sizes
in nanometres, and returns a frozen result whose ``score`` lies in [0, 1] (NaN, with
``valid=False`` and a flag, when the block holds nothing to judge) beside the
sub-measures it was built from (``to_dict()``):

=================================  ===========================================  ============
function                           what it scores                               1 means
=================================  ===========================================  ============
:func:`membrane_integrity`         continuity, closure, crispness of membranes  intact
:func:`edema`                      excess extracellular / electron-lucent void  severe edema
:func:`synapse_traceability`       both partners of each synapse followable     traceable
:func:`imaging_quality`            noise, focus, curtaining, charging           clean image
=================================  ===========================================  ============

Imaging quality is acquisition, not preservation: it is reported beside the three
preservation scores, never mixed into them, and flags blocks too poor to judge. The
preservation scores read only probability maps, so the image's noise or contrast can
reach them only through the network that made the maps.
"""

from ._common import MetricResult
from ._edema import Edema, edema
from ._imaging import THRESHOLDS, ImagingQuality, imaging_quality, noise_sigma
from ._membrane import MembraneIntegrity, membrane_integrity
from ._synapses import (
    MIN_EXPECTED_SYNAPSES,
    REFERENCE_SYNAPSES_PER_UM3,
    SynapseTraceability,
    synapse_traceability,
)

__all__ = [
    "MIN_EXPECTED_SYNAPSES",
    "REFERENCE_SYNAPSES_PER_UM3",
    "THRESHOLDS",
    "Edema",
    "ImagingQuality",
    "MembraneIntegrity",
    "MetricResult",
    "SynapseTraceability",
    "edema",
    "imaging_quality",
    "membrane_integrity",
    "noise_sigma",
    "synapse_traceability",
]
