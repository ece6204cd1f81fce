"""CoCosNet networks: state dicts equal the official manifests, forward behaviour of each option,
chunked correlation, and import of official-layout checkpoint files."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from engine.families import get_family, state_dict_keys
from engine.nets.cocosnet import CONFIGS, build, softmax_attend
from engine.requests.base import WeightsError
from engine.weights import Manifest, build_and_load, import_official

torch.set_num_threads(1)
MANIFESTS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "manifests"


@pytest.mark.parametrize("config", ["ade20k", "celebahq", "celebahqedge", "deepfashion"])
def test_state_dicts_equal_official_manifests(config: str) -> None:
    with torch.device("meta"):  # released size, no memory or init cost
        nets = build(CONFIGS[config])
    ours = state_dict_keys(nets)
    assert set(ours) == {"netG", "netCorr", "netD"}
    for sub in ("netG", "netCorr", "netD"):
        ref = json.loads((MANIFESTS / f"cocosnet_{config}_{sub}.json").read_text())
        # every name, shape and dtype, in registration order
        assert list(ours[sub].items()) == list(ref.items()), f"{config} {sub}"


def test_nomask_config_has_ade20k_layout() -> None:
    with torch.device("meta"):
        a = state_dict_keys(build(CONFIGS["ade20k"]))
        b = state_dict_keys(build(CONFIGS["ade20k_nomask"]))
    assert a == b


def _tiny(config: str, seed: int = 0) -> dict[str, torch.nn.Module]:
    torch.manual_seed(seed)
    nets = build(CONFIGS[config])
    for net in nets.values():
        net.eval()
    return nets


def _inputs(nc: int, size: int = 64, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ref = torch.rand(1, 3, size, size, generator=g) * 2 - 1
    labels = torch.randint(0, nc, (1, size // 8, size // 8), generator=g)
    sem = F.one_hot(labels, nc).permute(0, 3, 1, 2).float()
    sem = F.interpolate(sem, size=(size, size), mode="nearest")
    ref_sem = torch.flip(sem, dims=[3])
    return ref, sem, ref_sem


def _reference_warp(corr: torch.nn.Module, ref: torch.Tensor, sem: torch.Tensor, ref_sem: torch.Tensor,
                    temperature: float = 0.01) -> dict[str, torch.Tensor]:
    """The official forward written out with the whole HW×HW matrix (independent of the chunking)."""
    _, cont = corr.input_features(sem)
    _, feats = corr.exemplar_features(ref, ref_sem)
    theta = F.unfold(corr.theta(cont), 3, padding=1)
    phi = F.unfold(corr.phi(feats), 3, padding=1)
    theta = theta - theta.mean(dim=1, keepdim=True)
    phi = phi - phi.mean(dim=1, keepdim=True)
    theta = theta / (theta.norm(dim=1, keepdim=True) + 2.220446049250313e-16)
    phi = phi / (phi.norm(dim=1, keepdim=True) + 2.220446049250313e-16)
    f = torch.softmax(torch.matmul(theta.permute(0, 2, 1), phi) / temperature, dim=-1)
    h, w = ref.shape[2] // 4, ref.shape[3] // 4
    out = {}
    if corr.warp_patch:
        patches = F.unfold(ref, 4, stride=4).permute(0, 2, 1)
        out["warp_out"] = F.fold(torch.matmul(f, patches).permute(0, 2, 1), ref.shape[2:], 4, stride=4)
    else:
        colours = F.avg_pool2d(ref, 4).flatten(2).permute(0, 2, 1)
        low = torch.matmul(f, colours).permute(0, 2, 1).reshape(1, 3, h, w)
        mode = "bilinear" if corr.warp_bilinear else "nearest"
        out["warp_out"] = F.interpolate(low, scale_factor=4, mode=mode)
    seg = F.interpolate(ref_sem, scale_factor=0.25, mode="nearest").flatten(2).permute(0, 2, 1)
    out["warp_mask"] = torch.matmul(f, seg).permute(0, 2, 1).reshape(1, -1, h, w)
    return out


@pytest.mark.parametrize("config", ["tiny_ade20k", "tiny_celebahq", "tiny_deepfashion"])
def test_correspondence_matches_full_matrix_reference(config: str) -> None:
    nets = _tiny(config)
    corr = nets["netCorr"]
    ref, sem, ref_sem = _inputs(CONFIGS[config]["semantic_nc"])
    with torch.no_grad():
        full = _reference_warp(corr, ref, sem, ref_sem)
        ours = corr(ref, sem, ref_sem)
        chunked = corr(ref, sem, ref_sem, chunk_rows=5)  # 256 rows in uneven chunks
    torch.testing.assert_close(ours["warp_out"], full["warp_out"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(chunked["warp_out"], full["warp_out"], atol=1e-5, rtol=1e-5)
    assert ours["warp_out"].shape == (1, 3, 64, 64)
    if CONFIGS[config]["warp_mask"] == "direct":
        torch.testing.assert_close(chunked["warp_mask"], full["warp_mask"], atol=1e-5, rtol=1e-5)
        # warped one-hot labels stay a distribution over classes
        torch.testing.assert_close(ours["warp_mask"].sum(1), torch.ones(1, 16, 16), atol=1e-4, rtol=0)
    else:
        assert "warp_mask" not in ours


def test_softmax_attend_chunks_equal_full() -> None:
    g = torch.Generator().manual_seed(3)
    q = F.normalize(torch.randn(2, 50, 12, generator=g), dim=2)
    k = F.normalize(torch.randn(2, 12, 40, generator=g), dim=1)
    v = torch.randn(2, 40, 5, generator=g)
    full = torch.softmax(q @ k / 0.01, dim=-1) @ v
    for rows in (1, 7, 50, None):
        torch.testing.assert_close(softmax_attend(q, k, v, 0.01, rows), full, atol=1e-5, rtol=1e-5)


def test_warp_upsampling_modes_differ_as_configured() -> None:
    """nearest (ade20k) gives 4×4 constant blocks; bilinear (celebahq) does not; warp_patch
    (deepfashion) moves whole 4×4 patches, so a patch-copying warp can reproduce full detail."""
    for config, blocky in (("tiny_ade20k", True), ("tiny_celebahq", False)):
        nets = _tiny(config)
        ref, sem, ref_sem = _inputs(CONFIGS[config]["semantic_nc"])
        with torch.no_grad():
            out = nets["netCorr"](ref, sem, ref_sem)["warp_out"]
        blocks = out.unfold(2, 4, 4).unfold(3, 4, 4)
        spread = (blocks.amax(dim=(-1, -2)) - blocks.amin(dim=(-1, -2))).max().item()
        assert (spread < 1e-6) == blocky, config
    corr = _tiny("tiny_deepfashion")["netCorr"]
    ref, sem, _ = _inputs(CONFIGS["tiny_deepfashion"]["semantic_nc"])
    with torch.no_grad():
        theta = corr.input_keys(sem)
        # a sharp identity correspondence: each position attends to itself
        eye = torch.eye(theta.shape[2]).unsqueeze(0)
        out = corr.warp(eye, eye, ref, temperature=1e-3)["warp_out"]
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=0)


def test_maskmix_uses_exemplar_semantics_and_nomask_uses_noise() -> None:
    nets = _tiny("tiny_ade20k")
    corr = nets["netCorr"]
    ref, sem, ref_sem = _inputs(8)
    with torch.no_grad():
        a = corr(ref, sem, ref_sem)["warp_out"]
        b = corr(ref, sem, torch.flip(ref_sem, dims=[2]))["warp_out"]
        with pytest.raises(ValueError, match="exemplar's semantics"):
            corr(ref, sem, None)
    assert not torch.allclose(a, b)
    nomask = build(dict(CONFIGS["tiny_ade20k"], noise_for_mask=True))
    nomask["netCorr"].load_state_dict(corr.state_dict())
    nomask["netCorr"].eval()
    with torch.no_grad():
        g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
        c = nomask["netCorr"](ref, sem, None, noise=g1)["warp_out"]
        d = nomask["netCorr"](ref, sem, ref_sem, noise=g2)["warp_out"]
    torch.testing.assert_close(c, d)  # exemplar semantics are ignored, noise is seeded


def test_generator_and_discriminator_shapes_and_range() -> None:
    nets = _tiny("tiny_celebahqedge")
    nc = CONFIGS["tiny_celebahqedge"]["semantic_nc"]
    ref, sem, ref_sem = _inputs(nc)
    with torch.no_grad():
        warp = nets["netCorr"](ref, sem, ref_sem)["warp_out"]
        img = nets["netG"](sem, warp)
        d = nets["netD"](torch.cat([sem, img], 1))
    assert img.shape == (1, 3, 64, 64) and img.abs().max() <= 1
    assert len(d) == 2 and all(len(scale) == 5 for scale in d)
    assert d[0][-1].shape[1] == 1 and d[1][0].shape[-1] == d[0][0].shape[-1] // 2
    # the generator really is conditioned on the warped exemplar
    with torch.no_grad():
        img2 = nets["netG"](sem, -warp)
    assert not torch.allclose(img, img2)


def test_training_outputs_warp_cycle_and_feature_pair() -> None:
    nets = _tiny("tiny_celebahqedge")
    nc = CONFIGS["tiny_celebahqedge"]["semantic_nc"]
    ref, sem, ref_sem = _inputs(nc)
    nets["netCorr"].train()
    out = nets["netCorr"](ref, sem, ref_sem, real_img=ref, warp_cycle=True, return_corr=True)
    assert out["warp_cycle"].shape == (1, 3, 16, 16)
    assert out["corr"].shape == (1, 256, 256)
    assert out["adaptive_feature_real"].shape == out["adaptive_feature_seg"].shape
    loss = out["warp_cycle"].abs().mean() + out["adaptive_feature_real"].mean()
    loss.backward()
    assert nets["netCorr"].phi.weight.grad is not None


def _official_files(tmp_path: Path, config: str, with_d: bool, prefix: str = "latest") -> list[Path]:
    nets = build(CONFIGS[config], init=False)
    paths = []
    for sub, short in (("netG", "G"), ("netCorr", "Corr"), ("netD", "D")):
        if sub == "netD" and not with_d:
            continue
        p = tmp_path / f"{prefix}_net_{short}.pth"
        torch.save({k: torch.randn_like(v) if v.is_floating_point() else v
                    for k, v in nets[sub].state_dict().items()}, p)
        paths.append(p)
    return paths


@pytest.mark.parametrize("with_d", [False, True])
def test_import_official_layout_files(tmp_path: Path, weights_dir: Path, with_d: bool) -> None:
    files = _official_files(tmp_path, "tiny_celebahq", with_d)
    entry = import_official(files, name="cocos_test", family_name="cocosnet", config_name="tiny_celebahq")
    assert entry.provenance["kind"] == "official"
    modules = build_and_load(entry, Manifest())
    original = torch.load(files[0], weights_only=True)
    for k, v in original.items():
        torch.testing.assert_close(modules["netG"].state_dict()[k], v)
    assert not modules["netG"].training


def test_import_90_epoch_files_and_errors(tmp_path: Path, weights_dir: Path) -> None:
    files = _official_files(tmp_path, "tiny_ade20k", False, prefix="90")
    entry = import_official(files, name="nomask", family_name="cocosnet", config_name="tiny_ade20k")
    assert entry.config["semantic_nc"] == 8
    fam = get_family("cocosnet")
    with pytest.raises(WeightsError, match="netCorr"):
        fam.convert([files[0]], CONFIGS["tiny_ade20k"])
    bad = tmp_path / "latest_net_Corr.pth"
    sd = torch.load(files[1], weights_only=True)
    sd.pop("phi.bias")
    sd["extra.weight"] = torch.zeros(1)
    torch.save(sd, bad)
    with pytest.raises(WeightsError) as err:
        import_official([files[0], bad], name="broken", family_name="cocosnet", config_name="tiny_ade20k")
    assert "phi.bias" in str(err.value) and "extra.weight" in str(err.value)
    wrong_name = tmp_path / "generator.pth"
    wrong_name.write_bytes(files[0].read_bytes())
    with pytest.raises(WeightsError, match="net_G.pth"):
        fam.convert([wrong_name, files[1]], CONFIGS["tiny_ade20k"])


def test_prepare_for_inference_keeps_outputs() -> None:
    from engine.nets.cocosnet import prepare_for_inference

    nets = _tiny("tiny_ade20k")
    ref, sem, ref_sem = _inputs(8)
    with torch.no_grad():
        warp = nets["netCorr"](ref, sem, ref_sem)["warp_out"]
        img = nets["netG"](sem, warp)
    prepare_for_inference(nets)
    prepare_for_inference(nets)  # idempotent
    assert not any(k.endswith("weight_orig") for k in nets["netG"].state_dict())
    with torch.no_grad():
        warp2 = nets["netCorr"](ref, sem, ref_sem)["warp_out"]
        img2 = nets["netG"](sem, warp2)
    torch.testing.assert_close(warp2, warp, atol=2e-4, rtol=0)
    torch.testing.assert_close(img2, img, atol=2e-4, rtol=0)
