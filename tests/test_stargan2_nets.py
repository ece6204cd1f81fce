"""StarGAN v2 networks: state-dict layout of the released checkpoints, forward details, FAN masks,
official checkpoint import."""
from __future__ import annotations

import json
import math
import pickle
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from engine.nets import stargan2 as sg
from engine.requests.base import WeightsError

MANIFESTS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "manifests"
SUBNETS = ("generator", "mapping_network", "style_encoder", "discriminator", "fan")


@pytest.mark.parametrize("config", ["celeba_hq", "afhq"])
def test_state_dicts_equal_official_manifests(config: str, capsys: pytest.CaptureFixture) -> None:
    from engine.cli import main

    assert main(["weights", "keys", "stargan2", "--config", config]) == 0  # what users see
    ours = json.loads(capsys.readouterr().out, object_pairs_hook=OrderedDict)
    checked = 0
    for sub in SUBNETS:
        path = MANIFESTS / f"stargan2_{config}_{sub}.json"
        if not path.exists():
            assert sub == "fan" and config == "afhq" and sub not in ours  # afhq: w_hpf 0, no FAN
            continue
        official = json.loads(path.read_text(), object_pairs_hook=OrderedDict)
        assert list(ours[sub].items()) == list(official.items()), f"{config}/{sub} differs"
        checked += 1
    assert checked == (5 if config == "celeba_hq" else 4)


def test_high_pass_filter_is_a_constant_not_state() -> None:
    g = sg.Generator(img_size=64, style_dim=8, max_conv_dim=16, w_hpf=2, base_dim=4)
    assert "hpf.filter" not in g.state_dict()
    expected = torch.tensor([[-1.0, -1, -1], [-1, 8, -1], [-1, -1, -1]]) / 2
    assert torch.equal(g.hpf.filter, expected)
    x = torch.randn(1, 3, 5, 5)
    manual = F.conv2d(x, expected.expand(3, 1, 3, 3), padding=1, groups=3)
    assert torch.allclose(g.hpf(x), manual)


def test_resblk_and_adain_block_follow_the_official_formula() -> None:
    torch.manual_seed(0)
    blk = sg.ResBlk(4, 6, normalize=True, downsample=True)
    x = torch.randn(2, 4, 8, 8)
    r = F.instance_norm(x, weight=blk.norm1.weight, bias=blk.norm1.bias, eps=1e-5)
    r = F.avg_pool2d(blk.conv1(F.leaky_relu(r, 0.2)), 2)
    r = blk.conv2(F.leaky_relu(F.instance_norm(r, weight=blk.norm2.weight, bias=blk.norm2.bias, eps=1e-5), 0.2))
    sc = F.avg_pool2d(blk.conv1x1(x), 2)
    assert torch.allclose(blk(x), (sc + r) / math.sqrt(2), atol=1e-6)

    ada = sg.AdainResBlk(6, 4, style_dim=3, w_hpf=0, upsample=True)
    s = torch.randn(2, 3)

    def adain(norm: sg.AdaIN, h: torch.Tensor) -> torch.Tensor:
        gamma, beta = norm.fc(s).chunk(2, dim=1)
        return (1 + gamma[..., None, None]) * F.instance_norm(h, eps=1e-5) + beta[..., None, None]

    h = torch.randn(2, 6, 4, 4)
    r = F.interpolate(F.leaky_relu(adain(ada.norm1, h), 0.2), scale_factor=2, mode="nearest")
    r = ada.conv2(F.leaky_relu(adain(ada.norm2, ada.conv1(r)), 0.2))
    sc = ada.conv1x1(F.interpolate(h, scale_factor=2, mode="nearest"))
    assert torch.allclose(ada(h, s), (r + sc) / math.sqrt(2), atol=1e-5)
    ada.w_hpf = 1  # with the high-pass skip the shortcut is dropped
    assert torch.allclose(ada(h, s), r, atol=1e-5)


def test_generator_split_equals_forward_and_domain_selection() -> None:
    torch.manual_seed(0)
    cfg = sg.CONFIGS["tiny"]
    nets = sg.build(cfg)
    x = torch.randn(3, 3, 32, 32)
    y = torch.tensor([1, 0, 1])
    z = torch.randn(3, cfg["latent_dim"])
    s = nets["mapping_network"](z, y)
    assert s.shape == (3, cfg["style_dim"])
    assert torch.allclose(s[0], nets["mapping_network"].for_domain(z[:1], 1)[0], atol=1e-6)
    assert torch.allclose(s[1], nets["mapping_network"].for_domain(z[1:2], 0)[0], atol=1e-6)
    g = nets["generator"]
    out = g(x, s)
    assert out.shape == x.shape
    h, cache = g.encode_source(x)
    assert torch.equal(g.decode_style(h, s, cache), out)
    e = nets["style_encoder"](x, y)
    assert e.shape == (3, cfg["style_dim"])
    logits_all = nets["discriminator"].main(x).view(3, -1)
    assert torch.equal(nets["discriminator"](x, y), logits_all[torch.arange(3), y])


@pytest.mark.parametrize("config", ["tiny", "tiny_hpf"])
def test_folded_resampling_matches_the_official_op_order(config: str) -> None:
    """prepare_for_inference rewrites conv+pool and upsample+conv as strided (transposed) convs: the
    same outputs for every sub-network, to float rounding, with the state dict untouched."""
    torch.manual_seed(0)
    cfg = sg.CONFIGS[config]
    reference = sg.build(cfg)
    for m in reference.values():
        m.eval()
    folded = sg.build(cfg)
    for k, m in folded.items():
        m.load_state_dict(reference[k].state_dict())
        for p in m.parameters():
            if p.dim() == 1:  # official init leaves biases at zero: make them count
                p.data.add_(0.05 * torch.randn_like(p))
        reference[k].load_state_dict(m.state_dict())
    keys_before = {k: list(m.state_dict()) for k, m in folded.items()}
    sg.prepare_for_inference(folded)
    sg.prepare_for_inference(folded)  # idempotent
    assert {k: list(m.state_dict()) for k, m in folded.items()} == keys_before
    blocks = [m for m in folded["generator"].modules() if isinstance(m, (sg.ResBlk, sg.AdainResBlk))]
    assert any(getattr(b, "conv1_pooled", None) is not None for b in blocks)
    assert any(getattr(b, "conv1_upsampled", None) is not None for b in blocks)
    size = cfg["img_size"]
    x = torch.randn(2, 3, size, size)
    y = torch.tensor([1, 0])
    with torch.no_grad():
        s = reference["mapping_network"](torch.randn(2, cfg["latent_dim"]), y)
        masks = None
        if "fan" in reference:
            masks = reference["fan"].get_heatmap(x)
        want = reference["generator"](x, s, masks)
        got = folded["generator"](x, s, masks)
        assert (want - got).abs().max() < 1e-4 * want.abs().max()
        assert not torch.equal(want, got)  # a different op order ran: not the official path by accident
        for sub in ("style_encoder", "discriminator"):
            a, b = reference[sub](x, y), folded[sub](x, y)
            assert (a - b).abs().max() < 1e-4 * (a.abs().max() + 1e-6), sub


def test_generator_high_pass_path_uses_masks() -> None:
    torch.manual_seed(0)
    g = sg.Generator(img_size=64, style_dim=8, max_conv_dim=16, w_hpf=1, base_dim=8).eval()
    assert len(g.encode) == 2 + 3  # log2(64) - 4 + 1 downsamplings, 2 bottleneck blocks
    x, s = torch.randn(1, 3, 64, 64), torch.randn(1, 8)
    zeros = (torch.zeros(1, 1, 256, 256), torch.zeros(1, 1, 256, 256))
    ones = (torch.ones(1, 1, 256, 256), torch.ones(1, 1, 256, 256))
    with torch.no_grad():
        plain, masked0, masked1 = g(x, s), g(x, s, zeros), g(x, s, ones)
    assert torch.allclose(plain, masked0, atol=1e-6)  # zero masks add nothing
    assert not torch.allclose(plain, masked1, atol=1e-3)


def _blob(h: int, w: int, row: int, col: int, sigma: float = 3.0) -> torch.Tensor:
    rr, cc = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    return torch.exp(-((rr - row) ** 2 + (cc - col) ** 2) / (2 * sigma ** 2))


def test_heatmap_masks_post_processing() -> None:
    hm = torch.zeros(1, 98, 256, 256)
    hm[0, 0] = _blob(256, 256, 200, 40)     # outer face outline: removed
    hm[0, 12] = _blob(256, 256, 220, 128)   # chin: first mask only
    # The official shift(x, n) moves content UP by n rows (cyclic); eyes use n = -8 and -24 (down).
    hm[0, 62] = _blob(256, 256, 100, 90)    # eye: both masks, moved 8 down (cubed) plus a copy 24 down
    hm[0, 85] = _blob(256, 256, 180, 128)   # lower lip (n = +8): first mask only, moved 8 up
    m0, m1 = sg.heatmaps_to_masks(hm)
    assert m0.shape == m1.shape == (1, 1, 256, 256)
    assert float(m0.min()) >= 0 and float(m0.max()) <= 1
    assert m0[0, 0, 200, 40] < 1e-3 and m1[0, 0, 200, 40] < 1e-3
    assert m0[0, 0, 220, 128] > 0.9 and m1[0, 0, 220, 128] < 1e-3
    assert m0[0, 0, 108, 90] > 0.9 and m1[0, 0, 108, 90] > 0.9
    assert m0[0, 0, 124, 90] > 0.9 and m1[0, 0, 124, 90] > 0.9
    assert m0[0, 0, 100, 90] < 0.5
    assert m0[0, 0, 172, 128] > 0.9 and m1[0, 0, 172, 128] < 1e-3
    assert m0[0, 0, 180, 128] < 0.5


def test_fan_forward_and_heatmap_shapes() -> None:
    torch.manual_seed(0)
    fan = sg.FAN().eval()
    x = torch.rand(1, 3, 100, 80) * 2 - 1
    with torch.no_grad():
        raw = fan.get_heatmap(x, preprocess=False)
        m0, m1 = fan.get_heatmap(x)
    assert raw.shape == (1, 98, 64, 64)
    assert m0.shape == m1.shape == (1, 1, 256, 256)
    assert torch.isfinite(m0).all() and float(m0.max()) <= 1 and float(m1.min()) >= 0


# ------------------------------------------------------------------------------------ import
def _official_file(path: Path, config: dict, *, with_fan: bool, with_filter: bool = False) -> dict:
    torch.manual_seed(1)
    nets = sg.build(config)
    data = {k: nets[k].state_dict() for k in ("generator", "mapping_network", "style_encoder")}
    for sd in data.values():
        for v in sd.values():
            if v.is_floating_point():
                v.normal_()
    if with_filter:
        data["generator"]["hpf.filter"] = nets["generator"].hpf.filter.clone()
    if with_fan:
        data["fan"] = nets["fan"].state_dict()
    torch.save(data, path)
    return data


def test_import_official_nets_ema_via_cli(weights_dir: Path, tmp_path: Path) -> None:
    from engine.cli import main
    from engine.weights import Manifest, build_and_load

    src = tmp_path / "100000_nets_ema.ckpt"
    data = _official_file(src, sg.CONFIGS["tiny"], with_fan=False)
    assert main(["weights", "import", str(src), "--as", "sg_tiny", "--family", "stargan2", "--config", "tiny"]) == 0
    m = Manifest()
    entry = m.get("sg_tiny")
    assert entry.provenance["kind"] == "official"
    nets = build_and_load(entry, m)
    for sub in ("generator", "mapping_network", "style_encoder"):
        for k, v in data[sub].items():
            assert torch.equal(nets[sub].state_dict()[k], v), f"{sub}.{k}"


def test_import_hpf_model_with_wing_checkpoint(weights_dir: Path, tmp_path: Path) -> None:
    from engine.weights import Manifest, build_and_load, import_official

    cfg = sg.CONFIGS["tiny_hpf"]
    nets_file = tmp_path / "100000_nets_ema.ckpt"
    _official_file(nets_file, cfg, with_fan=False, with_filter=True)  # newer code writes hpf.filter
    with pytest.raises(WeightsError, match="wing.ckpt"):
        import_official([nets_file], name="hpf", family_name="stargan2", config_name="tiny_hpf")
    fan_sd = sg.FAN().state_dict()
    fan_sd["l0.bias"] = torch.arange(99, dtype=torch.float32)
    wing = tmp_path / "wing.ckpt"
    torch.save({"state_dict": {**fan_sd, "extra.unused": torch.zeros(2)}}, wing)
    entry = import_official([nets_file, wing], name="hpf", family_name="stargan2", config_name="tiny_hpf")
    nets = build_and_load(entry, Manifest())
    assert torch.equal(nets["fan"].l0.bias, torch.arange(99, dtype=torch.float32))


def test_import_refuses_pickled_code(weights_dir: Path, tmp_path: Path) -> None:
    from engine.weights import import_official

    class Payload:  # any class makes weights_only loading refuse the file
        def __reduce__(self):
            return (print, ("this must never run",))

    bad = tmp_path / "100000_nets_ema.ckpt"
    with open(bad, "wb") as fh:
        torch.save({"generator": Payload()}, fh, pickle_module=pickle)
    with pytest.raises(WeightsError, match="refused"):
        import_official([bad], name="bad", family_name="stargan2", config_name="tiny")
    assert not (weights_dir / "bad.safetensors").exists()


def test_import_reports_wrong_architecture(weights_dir: Path, tmp_path: Path) -> None:
    from engine.weights import import_official

    src = tmp_path / "100000_nets_ema.ckpt"
    _official_file(src, {**sg.CONFIGS["tiny"], "style_dim": 12}, with_fan=False)
    with pytest.raises(WeightsError, match="shape"):
        import_official([src], name="x", family_name="stargan2", config_name="tiny")
