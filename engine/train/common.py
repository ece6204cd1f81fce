"""Training utilities shared by every family's trainer: distributed setup, EMA, checkpoints with
resume, sample grids, infinite loaders and image-folder datasets.

Checkpoints are a folder: ``nets.safetensors`` (every network, ``<name>.<param>`` keys) plus
``state.pt`` (optimiser states, step and plain metadata) read back with ``weights_only=True``.
"""
from __future__ import annotations

import copy
import json
import os
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ..io import image_grid
from ..requests.base import InputError
from ..tasks import to_uint8_image
from ..weights import read_safetensors, read_torch_file, save_state_dicts, split_subnets

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


# ---------------------------------------------------------------------------------- distributed
@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup_distributed(device: str = "auto") -> DistInfo:
    """Initialise torch.distributed when launched by ``torchrun`` (WORLD_SIZE > 1), else single process.

    NCCL on CUDA (one GPU per local rank), gloo on CPU.
    """
    # training shapes are fixed per run, so cuDNN's autotuner pays for itself after a few steps
    torch.backends.cudnn.benchmark = True
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        from ..devices import pick_device
        return DistInfo(device=pick_device(device))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available() and device in ("auto", "cuda"):
        torch.cuda.set_device(local_rank)
        dev, backend = torch.device("cuda", local_rank), "nccl"
    else:
        dev, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=dev)


def is_main(info: DistInfo | None = None) -> bool:
    """True on rank 0 (or when not distributed): only it logs, writes samples and checkpoints."""
    if info is not None:
        return info.rank == 0
    return not dist.is_initialized() or dist.get_rank() == 0


def wrap_ddp(module: nn.Module, info: DistInfo, *, find_unused: bool = False) -> nn.Module:
    """DistributedDataParallel when distributed, the module itself otherwise."""
    if not info.enabled or not any(p.requires_grad for p in module.parameters()):
        return module
    ids = [info.local_rank] if info.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids, find_unused_parameters=find_unused)


def unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


def cleanup_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def seed_everything(seed: int, rank: int = 0) -> None:
    random.seed(seed + rank)
    np.random.seed((seed + rank) % 2**32)
    torch.manual_seed(seed + rank)


# ---------------------------------------------------------------------------------- EMA
def make_ema(module: nn.Module) -> nn.Module:
    """A frozen deep copy used as the exponential moving average."""
    ema = copy.deepcopy(unwrap(module)).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    return ema


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, beta: float = 0.999) -> None:
    """ema ← β·ema + (1-β)·model for parameters; buffers are copied."""
    model = unwrap(model)
    for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
        pe.lerp_(pm.detach(), 1.0 - beta)
    for be, bm in zip(ema.buffers(), model.buffers(), strict=True):
        be.copy_(bm)


# ---------------------------------------------------------------------------------- checkpoints
def save_checkpoint(folder: Path, nets: Mapping[str, nn.Module], optims: Mapping[str, torch.optim.Optimizer],
                    step: int, meta: Mapping[str, Any] | None = None) -> Path:
    """Write ``folder/nets.safetensors`` and ``folder/state.pt`` atomically (tmp + rename)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_state_dicts({k: unwrap(m).state_dict() for k, m in nets.items()}, folder / "nets.safetensors",
                     metadata={"step": str(step)})
    state = {"step": int(step), "optims": {k: o.state_dict() for k, o in optims.items()},
             "meta_json": json.dumps(dict(meta or {}))}
    tmp = folder / "state.pt.tmp"
    torch.save(state, tmp)
    os.replace(tmp, folder / "state.pt")
    return folder


def load_checkpoint(folder: Path, nets: Mapping[str, nn.Module],
                    optims: Mapping[str, torch.optim.Optimizer] | None = None) -> tuple[int, dict[str, Any]]:
    """Restore networks (strict) and optimisers; returns (step, meta)."""
    from ..weights import load_strict

    folder = Path(folder)
    if not (folder / "nets.safetensors").exists():
        raise InputError(f"{folder} holds no checkpoint (nets.safetensors missing)")
    state = split_subnets(read_safetensors(folder / "nets.safetensors"))
    load_strict({k: unwrap(m) for k, m in nets.items()}, state, source=str(folder / "nets.safetensors"))
    step, meta = 0, {}
    if (folder / "state.pt").exists():
        raw = read_torch_file(folder / "state.pt")
        step = int(raw.get("step", 0))
        meta = json.loads(raw.get("meta_json", "{}"))
        for k, o in (optims or {}).items():
            if k in raw.get("optims", {}):
                o.load_state_dict(raw["optims"][k])
    return step, meta


# ---------------------------------------------------------------------------------- images
def save_grid(path: Path, rows: Sequence[torch.Tensor], pad: int = 2) -> Path:
    """Save a grid PNG: each entry of ``rows`` is a (N, C, H, W) batch in [-1, 1] shown as one row.
    Rows may have different channel counts (1 or 3) but share H, W."""
    n = max(r.shape[0] for r in rows)
    blank = np.full((rows[0].shape[2], rows[0].shape[3], 3), 255, np.uint8)  # a short row ends in white
    cells = [to_uint8_image(r[j]) if j < r.shape[0] else blank for r in rows for j in range(n)]
    canvas = image_grid(cells, columns=n, pad=pad)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(canvas).save(path)
    return path


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_EXTS) if Path(folder).is_dir() else []


class WorkerRandom:
    """A dataset's ``random.Random``: in a loader worker it is reseeded from that worker's seed, which the
    DataLoader draws per worker and per epoch, so workers and epochs do not all replay one sequence."""

    def __init__(self, seed: int) -> None:
        self._rng, self._worker = random.Random(seed), -1   # -1: the main process

    def __call__(self) -> random.Random:
        worker = torch.utils.data.get_worker_info()
        if worker is not None and worker.id != self._worker:
            self._rng, self._worker = random.Random(worker.seed), worker.id
        return self._rng


def infinite_loader(dataset: Dataset, batch_size: int, *, info: DistInfo | None = None, shuffle: bool = True,
                    num_workers: int = 0, drop_last: bool = True, seed: int = 0,
                    sampler: Any = None) -> Iterator[Any]:
    """Yield batches forever, reshuffling each epoch (per-rank shards under DDP)."""
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise InputError("the training set is empty")
    epoch = 0
    if sampler is None and info is not None and info.enabled:
        sampler = DistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank, shuffle=shuffle, seed=seed)
    drop = drop_last and len(dataset) >= batch_size  # type: ignore[arg-type]
    while True:
        if isinstance(sampler, DistributedSampler):
            sampler.set_epoch(epoch)
        gen = torch.Generator().manual_seed(seed + epoch)
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=shuffle and sampler is None,
                            sampler=sampler, num_workers=num_workers, drop_last=drop, generator=gen)
        yield from loader
        epoch += 1


def linear_decay(step: int, start: int, end: int) -> float:
    """1 before ``start``, linearly down to 0 at ``end`` (CoCosNet/SPADE niter_decay)."""
    if step < start or end <= start:
        return 1.0
    return max(0.0, 1.0 - (step - start) / float(end - start))


def he_init(module: nn.Module) -> None:
    """He-normal (fan_in) weights, zero biases (StarGAN v2's init)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
