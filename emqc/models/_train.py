"""Training the networks on the real data's training parts (``emqc train NAME``).

Two networks (see ``MODEL_CARD.md``):

- ``fibsem3d``: 3D U-Net for isotropic FIB-SEM at 10 nm, heads ``boundary``,
  ``extracellular`` and ``synapse``, trained on the medulla cube (z 0–159; held
  out z ≥ 167) in two stages: ``fibsem3d_boundary`` (boundary, clean cube), then
  all three heads from it, clean and with simulated damage (see ``_fibsem_data``);
- ``sections2d``: 2D U-Net for single sections at ~9 nm, heads ``membrane``,
  ``synapse``, ``extracellular``, trained on the VNC (z 0–13) and ISBI (z 0–21)
  stacks downsampled 2× in-plane (4.6 → 9.2 nm, 4 → 8 nm).

Loss: per-head binary cross-entropy with logits, positives weighted by the
inverse of their frequency (capped per network: 10 for sections2d, 3 for
fibsem3d), and zero weight for heads a dataset has
no labels for. Adam with cosine decay. After training, batch-norm statistics are
recomputed on un-augmented training crops (the running averages collected under
heavy augmentation otherwise misfit clean data).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import datasets
from ._augment import Augmentation, CropSampler, to_unit
from ._targets import dataset_targets
from ._unet import UNet, UNetConfig

__all__ = ["TrainingSpec", "SPECS", "train", "save_network", "load_network", "WEIGHTS_DIR"]

log = logging.getLogger("emqc")
WEIGHTS_DIR = Path(__file__).parent / "weights"


@dataclass(frozen=True)
class TrainingSpec:
    """How one network is trained."""

    config: UNetConfig
    datasets: tuple[str, ...]
    crop: tuple[int, ...]
    batch: int
    iterations: int
    lr: float = 2e-3
    #: bfloat16 autocast in training (about 2x faster on CPUs with AVX512-BF16).
    bf16: bool = True
    downsample: dict[str, int] = field(default_factory=dict)  # in-plane factor per dataset
    #: Share of crops from the clean volumes when damaged copies are trained on too.
    clean_share: float = 1.0
    #: Largest weight of a positive voxel per head (inverse frequency otherwise; 10 for
    #: heads not named). Large weights inflate probabilities, and the metrics read maps at 0.5.
    pos_weight_caps: dict[str, float] = field(default_factory=dict)
    #: Network (in ``weights/pretrained/`` or ``weights/``) whose weights start this one:
    #: every tensor of the same name and shape, and the output channel of each shared head.
    init_from: str | None = None


#: Networks trained only to initialise others (saved under ``weights/pretrained/``,
#: which scoring never reads).
PRETRAINED = ("fibsem3d_boundary",)

SPECS = {
    # Stage 1: boundaries on the clean cube (the recipe that reached held-out F1 0.93).
    "fibsem3d_boundary": TrainingSpec(
        config=UNetConfig(
            dims=3, heads=("boundary",), base_channels=12, depth=3, working_voxel_nm=10.0
        ),
        datasets=("medulla",),
        crop=(48, 48, 48),
        batch=2,
        iterations=3000,
    ),
    # Stage 2: from stage 1, add the extracellular and synapse heads and damaged tissue.
    # (Training all three heads from scratch at 12 nm with 8 channels, twice as fast at
    # inference, lost boundary accuracy: held-out F1 0.86.)
    "fibsem3d": TrainingSpec(
        config=UNetConfig(
            dims=3,
            heads=("boundary", "extracellular", "synapse"),
            base_channels=12,
            depth=3,
            working_voxel_nm=10.0,
        ),
        datasets=("medulla",),
        crop=(48, 48, 48),
        batch=2,
        iterations=3000,
        lr=1e-3,
        clean_share=0.5,
        pos_weight_caps={"extracellular": 3.0},
        init_from="fibsem3d_boundary",
    ),
    "sections2d": TrainingSpec(
        config=UNetConfig(
            dims=2,
            heads=("membrane", "synapse", "extracellular"),
            base_channels=16,
            depth=3,
            working_voxel_nm=9.0,
        ),
        datasets=("vnc", "isbi"),
        crop=(192, 192),
        batch=6,
        iterations=3000,
        downsample={"vnc": 2, "isbi": 2},
    ),
}


def _downsample_inplane(raw: np.ndarray, targets: dict[str, np.ndarray], f: int):  # type: ignore[no-untyped-def]
    """Block-mean the image and max-pool the (thin) targets by ``f`` in y and x."""
    z, y, x = raw.shape
    y, x = y - y % f, x - x % f

    def blocks(a: np.ndarray) -> np.ndarray:
        return a[:, :y, :x].reshape(z, y // f, f, x // f, f)

    image = blocks(raw.astype(np.float32)).mean(axis=(2, 4))
    pooled = {k: blocks(v).max(axis=(2, 4)) for k, v in targets.items()}
    return image, pooled


def prepare(
    spec: TrainingSpec, part: str = "train"
) -> list[tuple[str, np.ndarray, dict[str, np.ndarray]]]:
    """(dataset, image in [0,1], targets) of each dataset's ``part`` at working resolution."""
    if spec.config.dims == 3 and part == "train":
        from ._fibsem_data import fibsem_training_volumes

        return fibsem_training_volumes(spec.config.working_voxel_nm, damage=spec.clean_share < 1)
    out = []
    for name in spec.datasets:
        vol = datasets.load(name)
        targets = dataset_targets(name, vol.labels, vol.voxel_size_nm)
        zs = datasets.split_z(name, part)  # type: ignore[arg-type]
        raw, targets = vol.raw[zs], {k: v[zs] for k, v in targets.items()}
        f = spec.downsample.get(name, 1)
        if f > 1:
            image, targets = _downsample_inplane(raw, targets, f)
            image = image / 255.0
        else:
            image = to_unit(raw)
        out.append((name, image.astype(np.float32), targets))
    return out


def _batch(samplers, weights, heads, batch, rng):  # type: ignore[no-untyped-def]
    xs, ys, ms = [], [], []
    for _ in range(batch):
        sampler = samplers[rng.choice(len(samplers), p=weights)]
        img, tgt = sampler.sample()
        xs.append(img[None])
        ys.append(np.stack([tgt.get(h, np.zeros_like(img)) for h in heads]))
        ms.append(np.array([h in tgt for h in heads], dtype=np.float32))
    return (
        torch.from_numpy(np.stack(xs)),
        torch.from_numpy(np.stack(ys)),
        torch.from_numpy(np.stack(ms)),
    )


def train(
    name: str,
    *,
    out: Path | None = None,
    iterations: int | None = None,
    seed: int = 0,
    threads: int | None = None,
    log_every: int = 100,
) -> Path:
    """Train network ``name`` (a key of :data:`SPECS`) and save it; return the weights path."""
    if name not in SPECS:
        raise ValueError(f"name must be one of {sorted(SPECS)}, got {name!r}")
    spec = SPECS[name]
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    if threads:
        torch.set_num_threads(threads)
    data = prepare(spec)
    heads = spec.config.heads
    samplers = [CropSampler(img, tgt, crop=spec.crop, rng=rng) for _, img, tgt in data]
    weights = _crop_weights(data, spec.clean_share)
    pos_weight = torch.tensor(
        [
            _pos_weight([t[h] for _, _, t in data if h in t], spec.pos_weight_caps.get(h, 10.0))
            for h in heads
        ]
    ).view(1, -1, *([1] * spec.config.dims))

    net = UNet(spec.config)
    if spec.init_from:
        init_from_pretrained(net, spec.init_from)
    opt = torch.optim.Adam(net.parameters(), lr=spec.lr)
    n_iter = iterations or spec.iterations
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, n_iter)
    loss_fn = nn.BCEWithLogitsLoss(reduction="none", pos_weight=pos_weight)
    t0, running = time.perf_counter(), 0.0
    net.train()
    for it in range(1, n_iter + 1):
        x, y, m = _batch(samplers, weights, heads, spec.batch, rng)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=spec.bf16):
            logits = net(x)
        per_voxel = loss_fn(logits.float(), y)
        mask = m.view(*m.shape, *([1] * spec.config.dims))
        loss = (per_voxel * mask).sum() / (mask.expand_as(per_voxel).sum() + 1e-6)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        value = loss.item()
        running = 0.98 * running + 0.02 * value if it > 1 else value
        if it % log_every == 0 or it == n_iter:
            log.info(
                "%s it %d/%d loss %.4f (%.0f s)",
                name,
                it,
                n_iter,
                running,
                time.perf_counter() - t0,
            )

    clean = [
        CropSampler(img, tgt, crop=spec.crop, rng=rng, augmentation=_NO_AUG) for _, img, tgt in data
    ]
    recalibrate_batchnorm(net, clean, weights, heads, spec.batch, rng)
    default = WEIGHTS_DIR / ("pretrained" if name in PRETRAINED else "") / f"{name}.pt"
    path = Path(out) if out else default
    info = {
        "datasets": list(spec.datasets),
        "split": {d: str(datasets.split_z(d, "train")) for d in spec.datasets},
        "iterations": n_iter,
        "crop": list(spec.crop),
        "batch": spec.batch,
        "seed": seed,
        "seconds": round(time.perf_counter() - t0, 1),
        "final_loss": round(running, 5),
        "torch": str(torch.__version__),
        "init_from": spec.init_from,
    }
    save_network(net, path, training=info)
    log.info("saved %s (%d parameters) to %s", name, sum(p.numel() for p in net.parameters()), path)
    return path


_NO_AUG = Augmentation(
    flip=False, rescale_p=0.0, intensity_p=0.0, invert_p=0.0, blur_p=0.0, noise_p=0.0
)


def init_from_pretrained(net: UNet, name: str) -> None:
    """Copy a trained network's weights into ``net``: same-named tensors of the same shape,
    and the output channels of the heads both have."""
    path = WEIGHTS_DIR / "pretrained" / f"{name}.pt"
    if not path.is_file():
        path = WEIGHTS_DIR / f"{name}.pt"
    source, _ = load_network(path)
    theirs, mine = source.state_dict(), net.state_dict()
    for key, value in theirs.items():
        if key.startswith("out."):
            continue
        if key in mine and mine[key].shape == value.shape:
            mine[key] = value
    for i, head in enumerate(net.config.heads):
        if head in source.config.heads:
            j = source.config.heads.index(head)
            mine["out.weight"][i] = theirs["out.weight"][j]
            mine["out.bias"][i] = theirs["out.bias"][j]
    net.load_state_dict(mine)
    log.info("initialised from %s (%s)", name, path.name)


def _crop_weights(data, clean_share: float) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Crop probability per volume: by size, clean volumes (no "+" in the name) get ``clean_share``."""
    sizes = np.array([img.size for _, img, _ in data], dtype=float)
    clean = np.array(["+" not in name for name, _, _ in data])
    if clean.all() or not clean.any():
        return sizes / sizes.sum()
    w = np.where(clean, clean_share * sizes / sizes[clean].sum(), 0.0)
    w[~clean] = (1 - clean_share) * sizes[~clean] / sizes[~clean].sum()
    return w / w.sum()


def _pos_weight(targets: list[np.ndarray], cap: float) -> float:
    frac = float(np.mean([t.mean() for t in targets])) if targets else 0.5
    return float(min(cap, (1 - frac) / max(frac, 1e-6)))


@torch.no_grad()
def recalibrate_batchnorm(net, samplers, weights, heads, batch, rng, n_batches: int = 50) -> None:  # type: ignore[no-untyped-def]
    """Recompute batch-norm running statistics as a plain average over clean crops."""
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    net.train()
    for _ in range(n_batches):
        x, _, _ = _batch(samplers, weights, heads, batch, rng)
        net(x)
    net.eval()


def save_network(net: UNet, path: Path, *, training: dict[str, Any]) -> None:
    """Save weights (float16, to stay small) with the config needed to rebuild the network."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in net.state_dict().items()}
    torch.save({"config": net.config.to_dict(), "state_dict": state, "training": training}, path)


def load_network(path: Path) -> tuple[UNet, dict[str, Any]]:
    """Rebuild a saved network in eval mode; returns it with its training record."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    net = UNet(UNetConfig.from_dict(blob["config"]))
    net.load_state_dict(
        {k: v.float() if v.is_floating_point() else v for k, v in blob["state_dict"].items()}
    )
    net.eval()
    return net, blob["training"]
