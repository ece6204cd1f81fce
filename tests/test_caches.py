"""The session caches: bounded by the bytes they hold, keyed only by what changes the cached value."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engine.nets.cocosnet import CONFIGS, build
from engine.requests.base import FrozenArray
from engine.requests.cocosnet import ExemplarRequest
from engine.tasks import (
    DEFAULT_CACHE_MIB,
    LRUCache,
    ModelStore,
    default_cache_bytes,
    held_bytes,
    make_context,
    run_request,
)
from engine.weights import Manifest, register_file, save_state_dicts

MIB = 2**20


def mib_tensor(n: float = 1.0) -> torch.Tensor:
    return torch.zeros(int(n * MIB) // 4, dtype=torch.float32)


# ------------------------------------------------------------------------------ held_bytes
def test_held_bytes_counts_tensors_arrays_and_shared_storage_once() -> None:
    t = mib_tensor(1)
    assert held_bytes(t) == MIB
    assert held_bytes((t, t[:10], {"view": t.view(2, -1)})) == MIB  # views of one storage
    assert held_bytes([t, mib_tensor(2), np.zeros(MIB, np.uint8), "text", 3]) == 4 * MIB
    assert held_bytes(torch.nn.Linear(256, 256, bias=False)) == 256 * 256 * 4
    assert held_bytes(None) == 0


# ------------------------------------------------------------------------------ LRUCache
def test_byte_bound_is_respected_and_evicts_least_recently_used() -> None:
    cache = LRUCache(max_bytes=3 * MIB)
    for key in "abc":
        cache.get_or_create(key, mib_tensor)
    assert cache.bytes == 3 * MIB and len(cache) == 3
    cache.get_or_create("a", mib_tensor)  # a hit makes "a" the most recently used
    assert cache.hits == 1
    cache.get_or_create("d", mib_tensor)  # over budget: the least recently used ("b") goes
    assert "b" not in cache and all(k in cache for k in "acd")
    assert cache.bytes == 3 * MIB
    cache.get_or_create("e", lambda: mib_tensor(2))  # needs two slots: "c" then "a" go
    assert [k for k in "acde" if k in cache] == ["d", "e"]
    assert cache.bytes == 3 * MIB <= cache.max_bytes


def test_entry_larger_than_the_budget_is_returned_but_not_stored() -> None:
    cache = LRUCache(max_bytes=2 * MIB)
    cache.get_or_create("small", mib_tensor)
    big = cache.get_or_create("big", lambda: mib_tensor(3))
    assert big.numel() * 4 == 3 * MIB
    assert "big" not in cache and "small" in cache and cache.bytes == MIB
    cache.get_or_create("big", lambda: mib_tensor(3))
    assert cache.misses == 3 and cache.hits == 0


def test_count_bound_and_clear() -> None:
    cache = LRUCache(2)
    assert cache.max_bytes == default_cache_bytes()
    for key in "abc":
        cache.get_or_create(key, mib_tensor)
    assert "a" not in cache and len(cache) == 2
    cache.clear()
    assert len(cache) == 0 and cache.bytes == 0


def test_budget_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("I2I_CACHE_MB", raising=False)
    assert default_cache_bytes() == DEFAULT_CACHE_MIB * MIB
    monkeypatch.setenv("I2I_CACHE_MB", "64")
    assert LRUCache().max_bytes == 64 * MIB
    monkeypatch.setenv("I2I_CACHE_MB", "lots")
    assert default_cache_bytes() == DEFAULT_CACHE_MIB * MIB


def test_model_store_keeps_the_model_in_use_whatever_its_size() -> None:
    store = ModelStore()
    assert store._cache.max_bytes is None and store._cache.capacity == store.capacity


# ------------------------------------------------------------------------------ exemplar cache keys
def _register(weights_dir: Path, config: dict, name: str) -> str:
    torch.manual_seed(0)
    nets = build(config)
    path = weights_dir / f"{name}.safetensors"
    save_state_dicts({k: nets[k].state_dict() for k in ("netG", "netCorr")}, path)
    register_file(Manifest(), name=name, family="cocosnet", config_name="tiny_ade20k", config=config, path=path,
                  provenance={"kind": "trained-here", "command": "test"})
    return name


def _blocks(seed: int, size: int, values: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, values, (size // 8, size // 8, 3) if values == 256 else (size // 16, size // 16))
    tile = np.ones((8, 8, 1) if values == 256 else (16, 16), np.int64)
    return np.kron(coarse, tile).astype(np.uint8 if values == 256 else np.int32)


def _request(model: str, seed: int, input_seed: int = 3) -> ExemplarRequest:
    return ExemplarRequest(model=model, seed=seed, input_map=FrozenArray(_blocks(input_seed, 64, 8)),
                           exemplar=FrozenArray(_blocks(1, 64, 256)), exemplar_map=FrozenArray(_blocks(2, 64, 8)))


def test_seed_and_input_edits_do_not_miss_the_exemplar_cache(weights_dir: Path) -> None:
    model = _register(weights_dir, dict(CONFIGS["tiny_ade20k"]), "tiny")
    cache, models = LRUCache(), ModelStore()

    def run(req: ExemplarRequest) -> np.ndarray:
        return run_request(req, make_context(1, req, models, cache)).image

    first = run(_request(model, seed=0))
    assert (cache.misses, cache.hits) == (1, 0)
    assert np.array_equal(run(_request(model, seed=12345)), first)  # the seed does nothing here: Vary
    assert (cache.misses, cache.hits) == (1, 1)
    run(_request(model, seed=7, input_seed=4))  # a brush stroke on the input map
    assert (cache.misses, cache.hits) == (1, 2)
    run(ExemplarRequest(model=model, input_map=FrozenArray(_blocks(3, 64, 8)),  # another exemplar
                        exemplar=FrozenArray(_blocks(9, 64, 256)), exemplar_map=FrozenArray(_blocks(2, 64, 8))))
    assert (cache.misses, cache.hits) == (2, 2)
    assert cache.bytes == held_bytes([v for v, _ in cache._data.values()]) > 0


def test_seed_keys_the_exemplar_cache_where_it_draws_the_exemplar_noise(weights_dir: Path) -> None:
    model = _register(weights_dir, dict(CONFIGS["tiny_ade20k"], noise_for_mask=True), "tiny_nomask")
    cache, models = LRUCache(), ModelStore()
    for seed in (0, 1, 0):
        req = _request(model, seed=seed)
        run_request(req, make_context(1, req, models, cache))
    assert (cache.misses, cache.hits) == (2, 1)
