"""CoCosNet tasks (exemplar translation, editing, makeup) and their CLI, with tiny random models."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from engine.cli import main
from engine.inputs.cocosnet import celebamask_names, encode_image, encode_labels
from engine.io import load_image, save_image, save_label_map, save_openpose_json, source_dir
from engine.nets.cocosnet import CONFIGS, build
from engine.requests.base import FrozenArray, InputError
from engine.requests.cocosnet import EditRequest, ExemplarRequest, MakeupRequest
from engine.tasks import LRUCache, ModelStore, make_context, run_request, to_uint8_image
from engine.weights import Manifest, register_file, save_state_dicts

torch.set_num_threads(1)
NAMES = celebamask_names()  # the project's parsing palette


def _register(weights_dir: Path, config: str, name: str | None = None, default: bool = False) -> str:
    name = name or f"cocos_{config}"
    torch.manual_seed(0)
    nets = build(CONFIGS[config])
    path = weights_dir / f"{name}.safetensors"
    save_state_dicts({k: nets[k].state_dict() for k in ("netG", "netCorr")}, path)
    register_file(Manifest(), name=name, family="cocosnet", config_name=config, config=CONFIGS[config],
                  path=path, provenance={"kind": "trained-here", "command": "test"}, extra={"default": default})
    return name


def _run(request, cache: LRUCache | None = None):
    ctx = make_context(1, request, ModelStore(), cache if cache is not None else LRUCache(8))
    return run_request(request, ctx), ctx


def _photo(seed: int, size: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
    return np.kron(small, np.ones((8, 8, 1), np.uint8))


def _labels(seed: int, nc: int = 8, size: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.kron(rng.integers(0, nc, (size // 16, size // 16)), np.ones((16, 16), np.int64)).astype(np.int32)


def _face(size: int = 64) -> np.ndarray:
    p = np.zeros((size, size), np.int32)
    p[8:56, 12:52] = NAMES.index("skin")
    p[22:27, 18:27] = NAMES.index("l_eye")
    p[22:27, 37:46] = NAMES.index("r_eye")
    p[28:38, 29:35] = NAMES.index("nose")
    p[42:45, 24:40] = NAMES.index("u_lip")
    p[45:48, 24:40] = NAMES.index("l_lip")
    p[:8, :] = NAMES.index("hair")
    return p


def test_exemplar_translation_matches_networks_and_caches_exemplar(weights_dir: Path) -> None:
    model = _register(weights_dir, "tiny_ade20k")
    ex, ex_map, inp = _photo(1), _labels(2), _labels(3)
    req = ExemplarRequest(model=model, input_map=FrozenArray(inp), exemplar=FrozenArray(ex),
                          exemplar_map=FrozenArray(ex_map))
    cache = LRUCache(8)
    result, ctx = _run(req, cache)
    assert result.image.shape == (64, 64, 3) and result.image.dtype == np.uint8
    assert result.aux["warped_exemplar"].shape == (64, 64, 3)
    assert {"exemplar", "correspondence", "translation"} <= set(result.timings)
    # the same computation done directly with the networks
    nets = ctx.models.get(model, torch.device("cpu"))
    with torch.inference_mode():
        sem = encode_labels(inp, 8, 64)[None]
        warp = nets["netCorr"](encode_image(ex, 64)[None], sem, encode_labels(ex_map, 8, 64)[None])["warp_out"]
        fake = nets["netG"](sem, warp)
    assert np.array_equal(result.image, to_uint8_image(fake))
    assert np.abs(result.aux["warped_exemplar"].astype(int) - to_uint8_image(warp).astype(int)).max() <= 1
    # a new input map with the same exemplar reuses the exemplar keys
    misses = cache.misses
    _run(ExemplarRequest(model=model, input_map=FrozenArray(_labels(4)), exemplar=FrozenArray(ex),
                         exemplar_map=FrozenArray(ex_map)), cache)
    assert cache.misses == misses and cache.hits >= 1
    _run(ExemplarRequest(model=model, input_map=FrozenArray(inp), exemplar=FrozenArray(_photo(9)),
                         exemplar_map=FrozenArray(ex_map)), cache)
    assert cache.misses == misses + 1


def test_exemplar_errors_and_preview_size(weights_dir: Path) -> None:
    model = _register(weights_dir, "tiny_ade20k")
    base = dict(model=model, input_map=FrozenArray(_labels(3)), exemplar=FrozenArray(_photo(1)))
    with pytest.raises(InputError, match="exemplar's semantic map"):
        _run(ExemplarRequest(**base))
    with pytest.raises(InputError, match="too small"):
        _run(ExemplarRequest(**base, exemplar_map=FrozenArray(_labels(2)), preview_size=40))
    with pytest.raises(InputError, match="class 9"):
        _run(ExemplarRequest(model=model, input_map=FrozenArray(np.full((64, 64), 9)), exemplar=FrozenArray(_photo(1)),
                             exemplar_map=FrozenArray(_labels(2))))
    wide = np.kron(_labels(3, size=64)[:32], np.ones((1, 2), np.int32))  # 32×128 map
    result, _ = _run(ExemplarRequest(model=model, input_map=FrozenArray(wide), exemplar=FrozenArray(_photo(1)),
                                     exemplar_map=FrozenArray(_labels(2)), preview_size=96))
    assert result.image.shape == (24, 96, 3)  # 96 px working size, the map's 1:4 aspect


def test_pose_model_translation(weights_dir: Path) -> None:
    model = _register(weights_dir, "tiny_deepfashion")
    kp = np.zeros((18, 3), np.float32)
    kp[:14, 0] = np.linspace(10, 50, 14)
    kp[:14, 1] = np.linspace(8, 60, 14)
    kp[:14, 2] = 1
    result, _ = _run(ExemplarRequest(model=model, keypoints=FrozenArray(kp), exemplar=FrozenArray(_photo(5))))
    assert result.image.shape == (64, 64, 3)
    assert result.aux["warped_exemplar"].std() > 0


def test_edit_pastes_back_unchanged_regions(weights_dir: Path) -> None:
    model = _register(weights_dir, "tiny_celebahq")
    photo, original = _photo(7), _face()
    edited = original.copy()
    edited[42:48, 24:40] = NAMES.index("skin")  # remove the lips
    result, _ = _run(EditRequest(model=model, photo=FrozenArray(photo), original_map=FrozenArray(original),
                                 edited_map=FrozenArray(edited)))
    far = np.ones((64, 64), bool)
    far[34:56, 16:48] = False
    assert np.array_equal(result.image[far], photo[far])
    core = slice(43, 47), slice(26, 38)
    assert np.array_equal(result.image[core], result.aux["generated"][core])
    assert result.aux["changed_mask"][44, 30, 0] == 255 and result.aux["changed_mask"][5, 5, 0] == 0
    full, _ = _run(EditRequest(model=model, photo=FrozenArray(photo), original_map=FrozenArray(original),
                               edited_map=FrozenArray(edited), paste_unchanged=False))
    assert np.array_equal(full.image, full.aux["generated"])
    with pytest.raises(InputError, match="differ in size"):
        _run(EditRequest(model=model, photo=FrozenArray(photo), original_map=FrozenArray(original),
                         edited_map=FrozenArray(edited[:32])))


def test_makeup_blends_only_selected_regions(weights_dir: Path) -> None:
    model = _register(weights_dir, "tiny_celebahqedge")
    portrait, face = _photo(11), _face()
    req = dict(model=model, portrait=FrozenArray(portrait), portrait_map=FrozenArray(face),
               exemplar=FrozenArray(_photo(12)), exemplar_map=FrozenArray(np.roll(face, 2, axis=1)))
    result, _ = _run(MakeupRequest(**req, regions=("lips",), strength=1.0))
    mask = result.aux["makeup_mask"][..., 0]
    lips = np.isin(face, [NAMES.index("u_lip"), NAMES.index("l_lip")])
    inner = cv2.erode(lips.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    assert inner.any() and (mask[inner] > 200).all()  # full strength inside the lips
    edge = lips & ~inner
    assert (mask[edge] > 60).all() and (mask[edge] < 250).any()  # a soft edge, not a cut
    outside = mask == 0
    assert outside.sum() > 3000 and np.array_equal(result.image[outside], portrait[outside])
    assert not np.array_equal(result.image[lips], portrait[lips])
    none, _ = _run(MakeupRequest(**req, regions=("lips", "eyes"), strength=0.0))
    assert np.array_equal(none.image, portrait)
    eyes, _ = _run(MakeupRequest(**req, regions=("eyes",)))
    emask = eyes.aux["makeup_mask"][..., 0]
    assert emask[24, 22] >= 250 and emask[20, 22] > 0 and emask[45, 30] == 0  # eye + shadow band, no lips
    with pytest.raises(InputError, match="strength"):
        _run(MakeupRequest(**req, strength=2.0))


def test_makeup_refuses_non_face_model(weights_dir: Path) -> None:
    model = _register(weights_dir, "tiny_ade20k")
    with pytest.raises(InputError, match="face model"):
        _run(MakeupRequest(model=model, portrait=FrozenArray(_photo(1)), portrait_map=FrozenArray(_face()),
                           exemplar=FrozenArray(_photo(2)), exemplar_map=FrozenArray(_face())))


def test_cli_generate_cocosnet_edit_makeup(weights_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _register(weights_dir, "tiny_ade20k", default=True)
    _register(weights_dir, "tiny_celebahqedge")
    save_label_map(tmp_path / "in.png", _labels(3))
    save_label_map(tmp_path / "ex_map.png", _labels(2))
    save_image(tmp_path / "ex.png", _photo(1))
    rc = main(["generate", "cocosnet", "--config", "tiny_ade20k", "--input", str(tmp_path / "in.png"),
               "--exemplar", str(tmp_path / "ex.png"), "--exemplar-map", str(tmp_path / "ex_map.png"),
               "--out", str(tmp_path / "out.png"), "--save-warp", str(tmp_path / "warp.png")])
    assert rc == 0
    assert load_image(tmp_path / "out.png").shape == (64, 64, 3)
    assert load_image(tmp_path / "warp.png").shape == (64, 64, 3)
    rc = main(["generate", "cocosnet", "--input", str(tmp_path / "in.png"), "--exemplar", str(tmp_path / "ex.png"),
               "--out", str(tmp_path / "x.png")])
    assert rc == 2 and "exemplar's semantic map" in capsys.readouterr().err
    edited = _labels(3)
    edited[:16, :16] = 5
    save_label_map(tmp_path / "edited.png", edited)
    rc = main(["generate", "edit", "--photo", str(tmp_path / "ex.png"), "--map", str(tmp_path / "in.png"),
               "--edited-map", str(tmp_path / "edited.png"), "--out", str(tmp_path / "edit.png")])
    assert rc == 0 and load_image(tmp_path / "edit.png").shape == (64, 64, 3)
    save_label_map(tmp_path / "face.png", _face())
    save_image(tmp_path / "portrait.png", _photo(4))
    rc = main(["generate", "makeup", "--portrait", str(tmp_path / "portrait.png"), "--portrait-map",
               str(tmp_path / "face.png"), "--exemplar", str(tmp_path / "ex.png"), "--exemplar-map",
               str(tmp_path / "face.png"), "--regions", "lips,eyes", "--strength", "0.8",
               "--out", str(tmp_path / "makeup.png")])
    assert rc == 0 and load_image(tmp_path / "makeup.png").shape == (64, 64, 3)
    rc = main(["generate", "makeup", "--portrait", str(tmp_path / "portrait.png"), "--portrait-map",
               str(tmp_path / "face.png"), "--exemplar", str(tmp_path / "ex.png"), "--exemplar-map",
               str(tmp_path / "face.png"), "--regions", "nose", "--out", str(tmp_path / "m.png")])
    assert rc == 2 and "unknown region" in capsys.readouterr().err


def test_cli_pose_json_input(weights_dir: Path, tmp_path: Path) -> None:
    _register(weights_dir, "tiny_deepfashion")
    kp = np.zeros((18, 3), np.float32)
    kp[[1, 2, 5], :] = [[60, 40, 1], [40, 40, 1], [80, 40, 1]]
    save_openpose_json(tmp_path / "pose.json", kp, size=(128, 128))
    save_image(tmp_path / "ex.png", _photo(1))
    rc = main(["generate", "cocosnet", "--config", "deepfashion", "--input", str(tmp_path / "pose.json"),
               "--exemplar", str(tmp_path / "ex.png"), "--out", str(tmp_path / "out.png")])
    assert rc == 0 and load_image(tmp_path / "out.png").shape == (64, 64, 3)


def test_cli_weights_keys_lists_three_subnetworks(capsys: pytest.CaptureFixture) -> None:
    assert main(["weights", "keys", "cocosnet", "--config", "tiny_celebahq"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"netG", "netCorr", "netD"}
    assert data["netG"]["fc.weight"][0] == [64, 22, 3, 3]


@pytest.mark.skipif(importlib.util.find_spec("dlib") is not None or source_dir("dlib-bin") is not None,
                    reason="dlib is installed or fetched")
def test_cli_makeup_without_maps_names_the_missing_extra(weights_dir: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    _register(weights_dir, "tiny_celebahqedge")
    save_image(tmp_path / "p.png", _photo(4))
    rc = main(["generate", "makeup", "--portrait", str(tmp_path / "p.png"), "--exemplar", str(tmp_path / "p.png"),
               "--out", str(tmp_path / "m.png")])
    assert rc == 2 and "dlib" in capsys.readouterr().err
