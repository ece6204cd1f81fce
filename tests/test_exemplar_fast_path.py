"""The exemplar task's live path computes what the plain networks compute: cached exemplar side,
blocked self-attention, stages through the compiler."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.compiled import MIN_EAGER_S, StageCompiler
from engine.inputs.cocosnet import encode_image, encode_labels
from engine.nets import cocosnet
from engine.nets.cocosnet import CONFIGS, Attention, build
from engine.requests.base import FrozenArray
from engine.requests.cocosnet import ExemplarRequest
from engine.tasks import LRUCache, ModelStore, make_context, run_request
from engine.weights import Manifest, build_and_load, register_file, save_state_dicts


def _attention_in_one_piece(attn: Attention, x: torch.Tensor) -> torch.Tensor:
    """The official SAGAN attention: the whole HW×HW/4 matrix at once."""
    n, _, h, w = x.shape
    theta = attn.theta(x).reshape(n, attn.ch // 8, h * w)
    phi = F.max_pool2d(attn.phi(x), 2).reshape(n, attn.ch // 8, h * w // 4)
    g = F.max_pool2d(attn.g(x), 2).reshape(n, attn.ch // 2, h * w // 4)
    beta = torch.softmax(torch.bmm(theta.transpose(1, 2), phi), -1)
    return attn.gamma * attn.o(torch.bmm(g, beta.transpose(1, 2)).reshape(n, attn.ch // 2, h, w)) + x


@pytest.mark.parametrize("block_elements", [1, 100, 64 * 16, 10**9])  # down to one query row per block
def test_blocked_attention_equals_the_whole_matrix(monkeypatch: pytest.MonkeyPatch, block_elements: int) -> None:
    torch.manual_seed(0)
    attn = Attention(32, spectral=False).eval()
    with torch.no_grad():
        attn.gamma.fill_(0.7)  # trained models have γ ≠ 0; 0 would hide the attention term
    x = torch.randn(2, 32, 16, 16)
    monkeypatch.setattr(cocosnet, "ATTENTION_BLOCK_ELEMENTS", block_elements)
    with torch.no_grad():
        expected = _attention_in_one_piece(attn, x)
        torch.testing.assert_close(attn(x), expected, rtol=1e-5, atol=1e-6)
        assert (attn(x) - x).abs().max() > 1e-3


def _register(weights_dir: Path) -> str:
    torch.manual_seed(0)
    nets = build(CONFIGS["tiny_ade20k"])
    with torch.no_grad():
        nets["netG"].attn.gamma.fill_(0.5)
    path = weights_dir / "tiny.safetensors"
    save_state_dicts({k: nets[k].state_dict() for k in ("netG", "netCorr")}, path)
    register_file(Manifest(), name="tiny", family="cocosnet", config_name="tiny_ade20k",
                  config=CONFIGS["tiny_ade20k"], path=path, provenance={"kind": "trained-here", "command": "test"})
    return "tiny"


def _blocks(seed: int, values: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if values == 256:
        return np.kron(rng.integers(0, 256, (8, 8, 3)), np.ones((8, 8, 1), np.int64)).astype(np.uint8)
    return np.kron(rng.integers(0, values, (4, 4)), np.ones((16, 16), np.int64)).astype(np.int32)


def test_cached_exemplar_side_gives_the_uncached_result(weights_dir: Path) -> None:
    """A stroke (new input map, new seed) served from the exemplar cache equals the result of an
    empty cache, and both equal the plain networks run in full (netCorr.forward + netG, eager,
    spectral norm hooks, NCHW)."""
    model = _register(weights_dir)
    photo, ex_map = _blocks(1, 256), _blocks(2, 8)
    models, cache = ModelStore(), LRUCache()

    def request(input_seed: int, seed: int) -> ExemplarRequest:
        return ExemplarRequest(model=model, seed=seed, input_map=FrozenArray(_blocks(input_seed, 8)),
                               exemplar=FrozenArray(photo), exemplar_map=FrozenArray(ex_map))

    run_request(request(3, 0), make_context(1, request(3, 0), models, cache))  # fills the exemplar cache
    edited = request(4, 99)
    cached = run_request(edited, make_context(2, edited, models, cache))
    assert cache.hits == 1 and cache.misses == 1
    uncached = run_request(edited, make_context(3, edited, ModelStore(), LRUCache()))
    assert np.array_equal(cached.image, uncached.image)
    assert np.array_equal(cached.aux["warped_exemplar"], uncached.aux["warped_exemplar"])

    nets = build_and_load(Manifest().get(model), Manifest())  # as loaded, not prepared for inference
    with torch.no_grad():
        sem = encode_labels(_blocks(4, 8), 8, 64)[None]
        warp = nets["netCorr"](encode_image(photo, 64)[None], sem, encode_labels(ex_map, 8, 64)[None])["warp_out"]
        fake = nets["netG"](sem, warp)
    image = ((fake[0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert np.abs(cached.image.astype(int) - image.astype(int)).max() <= 1


def test_input_branch_is_a_compiled_stage(weights_dir: Path) -> None:
    """The per-stroke stages (netCorr's input branch, netG) go through the compiler; the input
    branch of a live preview runs long enough eager (~30 ms at 128² on 2 cores) to be compiled."""
    assert MIN_EAGER_S <= 0.03
    model = _register(weights_dir)
    store = ModelStore()
    store.compiler = StageCompiler("on", min_eager_s=0.0, backend="eager")
    req = ExemplarRequest(model=model, input_map=FrozenArray(_blocks(3, 8)), exemplar=FrozenArray(_blocks(1, 256)),
                          exemplar_map=FrozenArray(_blocks(2, 8)))
    first = run_request(req, make_context(1, req, store, LRUCache()))
    assert store.compiler.wait(timeout=120)
    assert {r.stage for r in store.compiler.records if r.ok} >= {"NoVGGCorrespondence.input_keys",
                                                                 "CoCosNetGenerator.forward"}
    store.compiler.calls.clear()
    again = run_request(req, make_context(2, req, store, LRUCache()))
    assert store.compiler.calls["NoVGGCorrespondence.input_keys compiled"] == 1
    assert store.compiler.calls["CoCosNetGenerator.forward compiled"] == 1
    assert np.abs(again.image.astype(int) - first.image.astype(int)).max() <= 1


def test_once_per_input_stages_compile_only_when_slow() -> None:
    """An exemplar's keys run once per exemplar: at preview sizes they stay eager (their compile
    would compete with the live previews), while per-edit stages of the same speed compile."""
    compiler = StageCompiler("on", min_eager_s=0.0, once_min_eager_s=60.0, backend="eager")
    conv = torch.nn.Conv2d(3, 3, 3).eval()
    x = torch.randn(1, 3, 8, 8)
    with torch.inference_mode():
        compiler(conv, "forward", x, once=True)
        assert compiler.wait(timeout=0) and not compiler.records  # nothing was queued
        compiler(conv, "forward", x)
        compiler.start()
        assert compiler.wait(timeout=120)
    assert [r.ok for r in compiler.records] == [True]
