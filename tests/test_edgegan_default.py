"""The committed default EdgeGAN weights (trained here): registered, verified, loadable, and they
draw something for a sketch and for a scene."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from engine.api import FrozenArray, SceneObject, SceneRequest, SketchObjectRequest
from engine.requests.base import WeightsError
from engine.tasks import LRUCache, ModelStore, make_context, run_request
from engine.weights import REPO_ROOT, Manifest

torch.set_num_threads(1)


def _default_entries() -> list:
    return [e for e in Manifest(REPO_ROOT / "weights").by_family("edgegan") if e.extra.get("default")]


pytestmark = pytest.mark.skipif(not _default_entries(),
                                reason="no default EdgeGAN weights are registered in weights/manifest.json")


def _default_entry():
    return Manifest(REPO_ROOT / "weights"), _default_entries()[0]


def test_default_weights_are_trained_here_small_and_verified() -> None:
    manifest, entry = _default_entry()
    assert entry.provenance["kind"] == "trained-here" and "i2i train edgegan" in entry.provenance["command"]
    assert entry.bytes <= 20_000_000
    assert manifest.verify(entry).status == "verified"
    assert entry.config.get("background") is True


def test_default_weights_generate_object_and_scene() -> None:
    manifest, entry = _default_entry()
    store, cache = ModelStore(manifest), LRUCache(8)
    sketch = np.full((200, 200), 255, np.uint8)
    cv2.ellipse(sketch, (100, 110), (70, 50), 0, 0, 360, 0, 3)
    cv2.circle(sketch, (60, 60), 25, 0, 3)
    cls = entry.config["classes"][0]
    req = SketchObjectRequest(model=entry.name, sketch=FrozenArray(sketch), class_name=cls)
    res = run_request(req, make_context(1, req, store, cache))
    size = entry.config["image_size"]
    assert res.image.shape == (size, size, 3)
    assert res.image.std() > 5  # not a flat image
    w, h = 192, 128
    obj = np.full((h, w), 255, np.uint8)
    cv2.circle(obj, (60, 60), 30, 0, 2)
    bg = np.full((h, w), 255, np.uint8)
    cv2.line(bg, (0, 100), (w, 95), 0, 2)
    scene = SceneRequest(model=entry.name, objects=(SceneObject(FrozenArray(obj), cls, (25, 25, 95, 95)),),
                         background=FrozenArray(bg), size=(w, h))
    out = run_request(scene, make_context(2, scene, store, cache))
    assert out.image.shape == (h, w, 3) and out.aux["background"].std() > 2


def test_default_generators_were_trained_as_batch1_inference_runs_them() -> None:
    """The default's generators were trained with each sample normalised by its own statistics
    (``norm_per_sample``), which is what the official batch norm computes at batch 1: its trained γ/β
    give the same images one by one as in that mode for a whole batch."""
    from engine.weights import build_and_load

    manifest, entry = _default_entry()
    nets = build_and_load(entry, manifest)
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(24, entry.config["z_dim"], generator=gen)
    labels = torch.arange(24) % len(entry.config["classes"])
    for sub in ("edge_generator", "image_generator"):
        net = nets[sub]
        assert not torch.equal(net.fc_norm.weight, torch.ones_like(net.fc_norm.weight))  # trained γ
        with torch.no_grad():
            one_by_one = torch.cat([net(z[i:i + 1], labels[i:i + 1]) for i in range(len(z))])
            net.norm_per_sample = True
            per_sample = net(z, labels)
            net.norm_per_sample = False
        assert (one_by_one - per_sample).abs().max() < 1e-4, sub


def test_a_file_from_before_the_batch_norm_still_loads(tmp_path, monkeypatch) -> None:
    """An EdgeGAN file without the generators' batch-norm γ/β (written before it existed) loads, with γ = 1,
    β = 0; anything else missing is still an error."""
    from engine.weights import build_and_load, read_safetensors, register_file, save_state_dicts, split_subnets

    manifest, entry = _default_entry()
    state = split_subnets(read_safetensors(manifest.file_path(entry)))
    for sub in ("edge_generator", "image_generator"):
        del state[sub]["fc_norm.weight"], state[sub]["fc_norm.bias"]
    monkeypatch.setenv("I2I_WEIGHTS_DIR", str(tmp_path))
    local = Manifest()
    save_state_dicts(state, tmp_path / "old.safetensors")
    old = register_file(local, name="old", family="edgegan", config_name="custom", config=entry.config,
                        path=tmp_path / "old.safetensors", provenance={"kind": "trained-here"})
    nets = build_and_load(old, local)
    assert torch.equal(nets["image_generator"].fc_norm.weight, torch.ones(8 * entry.config["gf_dim"]))
    del state["image_generator"]["fc.bias"]
    save_state_dicts(state, tmp_path / "old.safetensors")
    broken = register_file(local, name="old", family="edgegan", config_name="custom", config=entry.config,
                           path=tmp_path / "old.safetensors", provenance={"kind": "trained-here"})
    with pytest.raises(WeightsError, match="missing key 'fc.bias'"):
        build_and_load(broken, local)


def test_default_draws_the_hand_drawn_sketches_in_their_shape() -> None:
    """The six hand-drawn sketches (docs/quality/edgegan_hand.png): each output's object mask matches its own
    sketch's filled shape far better than the other sketches' shapes (measured: own 0.79 on average)."""
    from engine.metrics import hand_sketches
    from engine.metrics.objects import iou, object_mask, sketch_shape

    manifest, entry = _default_entry()
    store, cache = ModelStore(manifest), LRUCache(8)
    size = entry.config["image_size"]
    names = list(hand_sketches.SKETCHES)
    shapes = [sketch_shape(hand_sketches.render(n), size) for n in names]
    own, other = [], []
    for i, name in enumerate(names):
        req = SketchObjectRequest(model=entry.name, sketch=FrozenArray(hand_sketches.render(name)),
                                  class_name=hand_sketches.SKETCHES[name][0])
        mask = object_mask(run_request(req, make_context(i, req, store, cache)).image)
        own.append(iou(mask, shapes[i]))
        other += [iou(mask, shapes[j]) for j in range(len(names)) if j != i]
    assert np.mean(own) >= 0.6 and np.mean(own) - np.mean(other) >= 0.15, (own, np.mean(other))
