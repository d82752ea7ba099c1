"""Segmentation networks: architecture, training targets, training, tiled inference.

See ``emqc/models/MODEL_CARD.md`` for the data, split, augmentation and held-out
accuracy of the committed weights in ``emqc/models/weights/``.
"""

from ._infer import Predictor
from ._train import SPECS, WEIGHTS_DIR, load_network, train
from ._unet import UNet, UNetConfig

__all__ = ["SPECS", "WEIGHTS_DIR", "Predictor", "UNet", "UNetConfig", "load_network", "train"]
