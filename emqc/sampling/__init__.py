"""Random block sampling: tissue mask, uniform block origins, and the block-list record.

The pure numerical core of ``emqc sample``: arrays in, arrays or records out, no I/O
besides the block list's JSON bytes.
"""

from emqc.sampling._blocklist import (
    BLOCKLIST_FORMAT,
    Block,
    BlockList,
    SamplingParameters,
    make_blocks,
)
from emqc.sampling._positions import (
    count_valid_positions,
    draw_seed,
    rng_for,
    sample_block_origins,
)
from emqc.sampling._tissue import TISSUE_MASK_DEFAULTS, tissue_mask

__all__ = [
    "BLOCKLIST_FORMAT",
    "TISSUE_MASK_DEFAULTS",
    "Block",
    "BlockList",
    "SamplingParameters",
    "count_valid_positions",
    "draw_seed",
    "make_blocks",
    "rng_for",
    "sample_block_origins",
    "tissue_mask",
]
