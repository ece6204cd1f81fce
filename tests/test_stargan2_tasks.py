"""StarGAN v2 tasks and CLI on a tiny random model registered in a temporary weights folder."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.nets import stargan2 as sg
from engine.requests.base import FrozenArray, InputError
from engine.requests.stargan2 import (
    LatentStyle,
    ReferenceStyle,
    StarGANInterpolateRequest,
    StarGANLatentRequest,
    StarGANReferenceRequest,
)
from engine.tasks import CancelToken, LRUCache, ModelStore, make_context, run_request


@pytest.fixture
def tiny_model(weights_dir: Path) -> str:
    from engine.weights import Manifest, register_file, save_state_dicts

    torch.manual_seed(0)
    nets = sg.build(sg.CONFIGS["tiny"], with_discriminator=False)
    path = weights_dir / "sg_tiny.safetensors"
    save_state_dicts({k: m.state_dict() for k, m in nets.items()}, path)
    register_file(Manifest(), name="sg_tiny", family="stargan2", config_name="tiny", config=sg.CONFIGS["tiny"],
                  path=path, provenance={"kind": "trained-here", "command": "test"}, extra={"default": True})
    return "sg_tiny"


def _image(h: int, w: int, seed: int) -> FrozenArray:
    rng = np.random.default_rng(seed)
    return FrozenArray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


class Runner:
    """Runs requests with one model store and cache, as the scheduler does."""

    def __init__(self) -> None:
        self.models, self.cache, self.n = ModelStore(), LRUCache(64), 0

    def __call__(self, request):
        self.n += 1
        return run_request(request, make_context(self.n, request, self.models, self.cache, CancelToken()))


def test_latent_guided_synthesis(tiny_model: str) -> None:
    run = Runner()
    src = _image(50, 70, 1)  # any size: resized to the model's 32×32
    a = run(StarGANLatentRequest(model=tiny_model, source=src, target_domain=1, seed=3))
    assert a.image.shape == (32, 32, 3) and a.image.dtype == np.uint8
    again = run(StarGANLatentRequest(model=tiny_model, source=src, target_domain=1, seed=3))
    other = run(StarGANLatentRequest(model=tiny_model, source=src, target_domain=1, seed=4))
    assert np.array_equal(a.image, again.image)
    assert not np.array_equal(a.image, other.image)
    # psi = 0 collapses every seed onto the averaged style of the domain
    t3 = run(StarGANLatentRequest(model=tiny_model, source=src, target_domain=1, seed=3, psi=0.0))
    t4 = run(StarGANLatentRequest(model=tiny_model, source=src, target_domain=1, seed=4, psi=0.0))
    assert np.array_equal(t3.image, t4.image)
    assert not np.array_equal(t3.image, a.image)


def test_matches_direct_network_call(tiny_model: str) -> None:
    from engine.tasks.stargan import image_to_tensor, latent_code
    from engine.weights import Manifest, build_and_load

    src = _image(32, 32, 2)
    out = Runner()(StarGANLatentRequest(model=tiny_model, source=src, target_domain=0, seed=9)).image
    m = Manifest()
    nets = build_and_load(m.get(tiny_model), m)
    with torch.no_grad():
        s = nets["mapping_network"](latent_code(9, 8), torch.tensor([0]))
        ref = nets["generator"](image_to_tensor(src.array, 32), s)[0]
    expected = ((ref.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1


def test_reference_guided_and_interpolation_endpoints(tiny_model: str) -> None:
    run = Runner()
    src, ref = _image(32, 32, 5), _image(64, 48, 6)
    by_ref = run(StarGANReferenceRequest(model=tiny_model, source=src, reference=ref, reference_domain=0)).image
    by_lat = run(StarGANLatentRequest(model=tiny_model, source=src, target_domain=1, seed=2)).image
    a, b = LatentStyle(domain=1, seed=2), ReferenceStyle(image=ref, domain=0)
    at0 = run(StarGANInterpolateRequest(model=tiny_model, source=src, style_a=a, style_b=b, alpha=0.0))
    at1 = run(StarGANInterpolateRequest(model=tiny_model, source=src, style_a=a, style_b=b, alpha=1.0))
    mid = run(StarGANInterpolateRequest(model=tiny_model, source=src, style_a=a, style_b=b, alpha=0.5))
    assert np.array_equal(at0.image, by_lat)
    assert np.array_equal(at1.image, by_ref)
    assert not np.array_equal(mid.image, by_lat) and not np.array_equal(mid.image, by_ref)
    # the slider move reused the cached source features and style codes: only the decoder ran
    assert "decode" in mid.timings
    assert "encode" not in mid.timings and "style" not in mid.timings


def test_preview_size_runs_smaller(tiny_model: str) -> None:
    res = Runner()(StarGANLatentRequest(model=tiny_model, source=_image(40, 40, 1), target_domain=0,
                                        preview_size=16))
    assert res.image.shape == (16, 16, 3)
    assert any("preview" in n for n in res.notes)


def test_default_model_is_used_when_none_named(tiny_model: str) -> None:
    res = Runner()(StarGANLatentRequest(source=_image(32, 32, 1), target_domain=0))
    assert res.image.shape == (32, 32, 3)


@pytest.mark.parametrize("request_factory, message", [
    (lambda m: StarGANLatentRequest(model=m, source=None), "source"),
    (lambda m: StarGANLatentRequest(model=m, source=_image(8, 8, 1), target_domain=2), "out of range"),
    (lambda m: StarGANLatentRequest(model=m, source=FrozenArray(np.zeros((8, 8, 5), np.uint8))), "RGB"),
    (lambda m: StarGANLatentRequest(model=m, source=_image(8, 8, 1), psi=float("nan")), "psi"),
    (lambda m: StarGANReferenceRequest(model=m, source=_image(8, 8, 1)), "reference"),
    (lambda m: StarGANInterpolateRequest(model=m, source=_image(8, 8, 1), style_a=LatentStyle(0)), "style B"),
])
def test_bad_input_is_a_clear_input_error(tiny_model: str, request_factory, message: str) -> None:
    with pytest.raises(InputError, match=message):
        Runner()(request_factory(tiny_model))


def test_cli_reference_grid_and_latent_outputs(tiny_model: str, tmp_path: Path) -> None:
    from engine.cli import main

    paths = []
    for i, (h, w) in enumerate([(32, 32), (40, 20), (64, 64)]):
        p = tmp_path / f"img{i}.png"
        Image.fromarray(_image(h, w, i).array).save(p)
        paths.append(str(p))
    grid = tmp_path / "grid.png"
    assert main(["generate", "stargan2-reference", "--source", paths[0], paths[1], "--reference", paths[1],
                 paths[2], "--ref-domain", "a", "b", "--out", str(grid), "--grid"]) == 0
    img = np.asarray(Image.open(grid))
    assert img.shape == (3 * 34 + 2, 3 * 34 + 2, 3)  # (1 + 2 sources) × (1 + 2 references), 32 px + 2 px pad
    out = tmp_path / "lat.png"
    assert main(["generate", "stargan2-latent", "--source", paths[0], "--domain", "b", "--num", "2",
                 "--out", str(out)]) == 0
    written = sorted(p.name for p in tmp_path.glob("lat_*.png"))
    assert written == ["lat_img0_b_s0.png", "lat_img0_b_s1.png"]
    inter = tmp_path / "inter.png"
    assert main(["generate", "stargan2-interpolate", "--source", paths[0], "--style-a", "latent:a:1",
                 "--style-b", f"ref:{paths[2]}:b", "--steps", "3", "--grid", "--out", str(inter)]) == 0
    assert np.asarray(Image.open(inter)).shape == (34 + 2, 4 * 34 + 2, 3)
    assert main(["generate", "stargan2-latent", "--source", paths[0], "--domain", "zebra",
                 "--out", str(out)]) == 2


def test_high_pass_model_runs_fan_masks(weights_dir: Path) -> None:
    from engine.weights import Manifest, register_file, save_state_dicts

    torch.manual_seed(0)
    cfg = sg.CONFIGS["tiny_hpf"]
    nets = sg.build(cfg, with_discriminator=False)
    path = weights_dir / "hpf.safetensors"
    save_state_dicts({k: m.state_dict() for k, m in nets.items()}, path)
    register_file(Manifest(), name="hpf", family="stargan2", config_name="tiny_hpf", config=cfg, path=path,
                  provenance={"kind": "trained-here", "command": "test"})
    run = Runner()
    src = _image(64, 64, 3)
    res = run(StarGANLatentRequest(model="hpf", source=src, target_domain=0, seed=1))
    assert res.image.shape == (64, 64, 3)
    assert res.aux["face_mask"].shape == (256, 256, 3) and "masks" in res.timings
    slider = run(StarGANLatentRequest(model="hpf", source=src, target_domain=0, seed=1, psi=0.5))
    assert "masks" not in slider.timings  # FAN ran once per source image
