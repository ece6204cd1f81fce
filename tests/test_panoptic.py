"""Panoptic family: panoptic-aware conv/upsampling numerics, generator and SPADE manifests,
official-checkpoint import, inputs, task and CLI."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.inputs.panoptic import (
    conditioning,
    import_coco_panoptic,
    make_instance_map,
    panoptic_ids,
    remap_labels,
    save_coco_png,
)
from engine.io import resize_nearest
from engine.nets import panoptic as P
from engine.requests.base import FrozenArray, InputError, WeightsError

torch.set_num_threads(1)
MANIFESTS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "manifests"
if not MANIFESTS.exists():
    MANIFESTS = Path("/work/shared/reference/manifests")


def _two_instances(h: int = 8, w: int = 10) -> torch.Tensor:
    """(1, h, w) ids: two touching segments, left half 0 and right half 1."""
    ids = torch.zeros(1, h, w, dtype=torch.long)
    ids[:, :, w // 2:] = 1
    return ids


def _naive_paconv(x, weight, bias, ids, stride, padding, dilation, pad_mode):
    """Per-pixel reference of W·(X⊙M)·(k²/ΣM) + b (slow; tiny inputs only)."""
    B, C, H, W = x.shape
    Cout, _, kh, kw = weight.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    Ho = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    Wo = (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out = torch.zeros(B, Cout, Ho, Wo, dtype=torch.float64)
    cy, cx = (kh - 1) // 2, (kw - 1) // 2
    for b in range(B):
        for i in range(Ho):
            for j in range(Wo):
                def at(u, v, b=b, i=i, j=j):
                    y, xx = i * sh - ph + u * dh, j * sw - pw + v * dw
                    inside = 0 <= y < H and 0 <= xx < W
                    return inside, (int(ids[b, y, xx]) if inside else None), y, xx
                _, cid, _, _ = at(cy, cx)
                acc = torch.zeros(Cout, dtype=torch.float64)
                msum = 0
                for u in range(kh):
                    for v in range(kw):
                        inside, pid, y, xx = at(u, v)
                        m = (pid == cid) if inside else (pad_mode == "zero" or cid is None)
                        if m:
                            msum += 1
                            if inside:
                                acc += weight[:, :, u, v].double() @ x[b, :, y, xx].double()
                out[b, :, i, j] = acc * (kh * kw / msum) + (bias.double() if bias is not None else 0)
    return out


CONV_CASES = [  # kernel, stride, dilation, padding
    (3, 1, 1, 1), (3, 2, 1, 1), (5, 1, 2, 4), (4, 2, 1, 1), (1, 1, 1, 0), ((3, 5), (1, 2), (2, 1), (2, 2)),
    (3, 1, 1, 0),
]


# ------------------------------------------------------------------------------ 1. PAConv
@pytest.mark.parametrize("impl", ["sparse", "unfold"])
@pytest.mark.parametrize("case", CONV_CASES)
def test_paconv_equals_plain_conv_on_one_segment(impl, case):
    torch.manual_seed(0)
    k, s, d, p = case
    conv = P.PanopticConv2d(3, 5, k, stride=s, dilation=d, padding=p)
    conv.impl = impl
    x = torch.randn(2, 3, 11, 12)
    pmap = P.PanopticMap(torch.zeros(2, 1, 11, 12), torch.full((2, 11, 12), 7, dtype=torch.long))
    ref = F.conv2d(x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation)
    out = conv(x, pmap)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_paconv_partial_padding_is_partial_conv_at_borders():
    torch.manual_seed(1)
    conv = P.PanopticConv2d(2, 3, 3, padding=1)
    x = torch.randn(1, 2, 6, 7)
    ids = torch.zeros(1, 6, 7, dtype=torch.long)
    win = P.window_mask(ids, 3, 1, 1, 1, pad_mode="partial")
    out = P.panoptic_conv2d(x, conv.weight, conv.bias, win, (1, 1), (1, 1), (1, 1))
    # NVIDIA partial conv with an all-valid image mask: (conv(X) - b)·9/count + b.
    count = F.conv2d(torch.ones(1, 1, 6, 7), torch.ones(1, 1, 3, 3), padding=1)
    plain = F.conv2d(x, conv.weight, conv.bias, padding=1)
    expected = (plain - conv.bias[None, :, None, None]) * (9 / count) + conv.bias[None, :, None, None]
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out[..., 0, 0], plain[..., 0, 0])  # borders really differ from zero padding


@pytest.mark.parametrize("pad_mode", ["zero", "partial"])
@pytest.mark.parametrize("case", CONV_CASES)
def test_paconv_matches_per_pixel_reference(case, pad_mode):
    torch.manual_seed(2)
    k, s, d, p = case
    conv = P.PanopticConv2d(2, 3, k, stride=s, dilation=d, padding=p)
    x = torch.randn(2, 2, 7, 9)
    ids = torch.randint(0, 3, (2, 7, 9))
    ref = _naive_paconv(x, conv.weight.detach(), conv.bias.detach(), ids, conv.stride, conv.padding,
                        conv.dilation, pad_mode)
    win = P.window_mask(ids, conv.kernel_size, conv.stride, conv.dilation, conv.padding, pad_mode)
    for impl in ("sparse", "unfold"):
        out = P.panoptic_conv2d(x, conv.weight, conv.bias, win, conv.stride, conv.padding, conv.dilation, impl)
        torch.testing.assert_close(out.double(), ref, atol=1e-4, rtol=1e-4)


def test_paconv_no_leakage_between_touching_instances_of_one_class():
    torch.manual_seed(3)
    ids = _two_instances()
    semantic = torch.ones(1, 1, 8, 10)  # one class everywhere: only the instance ids separate them
    pmap = P.PanopticMap(semantic, ids)
    conv = P.PanopticConv2d(4, 4, 3, padding=1)
    x = torch.randn(1, 4, 8, 10)
    x2 = x.clone()
    x2[..., 5:] += 10 * torch.randn(1, 4, 8, 5)  # change only the right instance
    left = (slice(None), slice(None), slice(None), slice(0, 5))
    a, b = conv(x, pmap), conv(x2, pmap)
    assert torch.equal(a[left], b[left])
    plain = F.conv2d(x, conv.weight, conv.bias, padding=1), F.conv2d(x2, conv.weight, conv.bias, padding=1)
    assert (plain[0][left] - plain[1][left]).abs().max() > 1  # the plain conv does leak
    # the whole panoptic residual block (eval: BatchNorm uses running stats, per pixel)
    block = P.PanopticSPADEResnetBlock(4, 6, 1, spade_hidden=8).eval()
    with torch.no_grad():
        ya, yb = block(x, pmap), block(x2, pmap)
    assert torch.equal(ya[left], yb[left])
    assert not torch.equal(ya[..., 5:], yb[..., 5:])


def test_paconv_gradients_and_boundary_fraction():
    ids = _two_instances()
    win = P.window_mask(ids, 3, 1, 1, 1)
    assert win.boundary_fraction == pytest.approx(16 / 80)  # columns 4 and 5 cross the boundary
    conv = P.PanopticConv2d(2, 2, 3, padding=1)
    x = torch.randn(1, 2, 8, 10, requires_grad=True)
    conv(x, P.PanopticMap(torch.zeros(1, 1, 8, 10), ids)).sum().backward()
    assert x.grad is not None and conv.weight.grad is not None and torch.isfinite(x.grad).all()


# ------------------------------------------------------------------------------ 2. PAUp
def test_upsample_uniform_map_is_nearest():
    ids_h = torch.zeros(1, 8, 8, dtype=torch.long)
    up = P.PanopticUpsample(3, 2).eval()
    x = torch.randn(1, 3, 4, 4)
    pmap = P.PanopticMap(torch.zeros(1, 2, 8, 8), ids_h)
    torch.testing.assert_close(up(x, pmap), F.interpolate(x, scale_factor=2, mode="nearest"))


def test_upsample_copies_same_segment_neighbour_not_parent():
    ids_h = torch.tensor([[1, 1, 2, 2],
                          [1, 2, 2, 2],
                          [1, 1, 2, 2],
                          [1, 1, 2, 2]])[None]
    ids_l = ids_h[:, ::2, ::2]
    src_y, src_x, found = P.upsample_sources(ids_l, ids_h)
    assert found.all()
    # (1,1) is segment 2 but its parent (0,0) is 1: copy from (0,1), the right neighbour
    assert (int(src_y[0, 1, 1]), int(src_x[0, 1, 1])) == (0, 1)
    # every pixel copies from a low-res pixel of its own segment
    assert torch.equal(ids_l[0][src_y[0], src_x[0]], ids_h[0])
    x = torch.arange(4.0).view(1, 1, 2, 2)
    out = P.PanopticUpsample(1, 1).eval()(x, P.PanopticMap(torch.zeros(1, 1, 4, 4), ids_h))
    assert out[0, 0, 1, 1] == x[0, 0, 0, 1]
    assert F.interpolate(x, scale_factor=2)[0, 0, 1, 1] == x[0, 0, 0, 0]  # what nearest would copy


def test_upsample_search_order_prefers_vertical_then_horizontal():
    ids_l = torch.tensor([[1, 2], [2, 2]])[None]
    ids_h = torch.tensor([[1, 1, 2, 2],
                          [1, 2, 2, 2],
                          [2, 2, 2, 2],
                          [2, 2, 2, 2]])[None]
    src_y, src_x, found = P.upsample_sources(ids_l, ids_h)
    assert (int(src_y[0, 1, 1]), int(src_x[0, 1, 1])) == (1, 0)  # below before right
    # the child (1,0) of block (0,0) (segment 1) keeps its parent
    assert (int(src_y[0, 1, 0]), int(src_x[0, 1, 0])) == (0, 0)
    # top-left children of a nearest-subsampled pyramid always keep their parent
    assert torch.equal(src_y[0, ::2, ::2], torch.tensor([[0, 0], [1, 1]]))


def test_upsample_fills_holes_with_encoded_semantics():
    ids_h = torch.tensor([[1, 1, 1, 2],
                          [1, 1, 2, 2],
                          [1, 1, 1, 1],
                          [1, 3, 1, 1]])[None]
    src_y, src_x, found = P.upsample_sources(ids_h[:, ::2, ::2], ids_h)
    holes = ~found[0]
    assert torch.equal(holes, (ids_h[0] == 2) | (ids_h[0] == 3))  # segments absent at low resolution
    torch.manual_seed(4)
    semantic = torch.randn(1, 2, 4, 4)
    pmap = P.PanopticMap(semantic, ids_h)
    up = P.PanopticUpsample(3, 2).eval()
    x = torch.randn(1, 3, 2, 2)
    out = up(x, pmap)
    encoded = up.encode(semantic, pmap)
    torch.testing.assert_close(out[0][:, holes], encoded[0][:, holes])
    torch.testing.assert_close(out[0][:, ~holes], F.interpolate(x, scale_factor=2)[0][:, ~holes])


# ------------------------------------------------------------------------------ 3. generator
@pytest.mark.parametrize("name", ["coco", "ade20k", "cityscapes"])
def test_semantic_only_mode_matches_spade_manifest(name):
    from engine.families import get_family, resolve_config, state_dict_keys

    fam = get_family("panoptic")
    manifest = json.loads((MANIFESTS / f"spade_{name}_netG.json").read_text())
    ours = state_dict_keys(fam.build(resolve_config(fam, f"spade_{name}")))
    assert list(ours) == ["netG"]
    assert list(ours["netG"].items()) == list(manifest.items())  # names, shapes, dtypes and order


def test_weights_keys_cli_prints_netG(capsys):
    from engine.cli import main

    assert main(["weights", "keys", "panoptic", "--config", "spade_ade20k"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data) == ["netG"] and data["netG"]["fc.weight"] == [[1024, 151, 3, 3], "float32"]


def _tiny(mode="panoptic", **kw):
    cfg = dict(P.CONFIGS["panoptic_tiny" if mode == "panoptic" else "spade_tiny"], **kw)
    return cfg, P.build_generator(cfg)


def _scene(H=32, W=32):
    labels = np.zeros((H, W), np.int32)
    labels[H // 2:] = 1
    labels[4:14, 4:28] = 2
    inst = labels.copy()
    inst[4:14, 4:16] = 2001
    inst[4:14, 16:28] = 2002  # two touching instances of class 2
    inst[20:24, 3:5] = 3001
    labels[20:24, 3:5] = 3
    return labels, inst


def test_panoptic_generator_with_one_segment_equals_spade():
    torch.manual_seed(5)
    _, spade = _tiny("semantic")
    cfg_p, pan = _tiny("panoptic")
    missing, unexpected = pan.load_state_dict(spade.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("ups.") for k in missing)
    spade.eval()
    pan.eval()
    labels = np.zeros((32, 32), np.int32)
    sem, ids = conditioning(labels, labels, cfg_p)
    with torch.no_grad():
        torch.testing.assert_close(pan(sem, ids), spade(sem), atol=1e-5, rtol=1e-5)
        labels2, inst2 = _scene()
        sem2, ids2 = conditioning(labels2, inst2, cfg_p)
        assert not torch.allclose(pan(sem2, ids2), spade(sem2), atol=1e-3)


def test_panoptic_generator_trains_every_parameter_and_is_resolution_free():
    torch.manual_seed(6)
    cfg, g = _tiny("panoptic")
    labels, inst = _scene()
    sem, ids = conditioning(labels, inst, cfg)
    sem_b, ids_b = torch.cat([sem, sem.flip(-1)]), torch.cat([ids, ids.flip(-1)])  # BatchNorm needs 2 values
    out = g(sem_b, ids_b)
    assert out.shape == (2, 3, 32, 32) and out.abs().max() <= 1
    out.mean().backward()
    no_grad = {n for n, p in g.named_parameters() if p.grad is None}
    # a hole encoder only runs (and learns) at scales where segments appear that are new there
    assert all(n.startswith("ups.") for n in no_grad)
    assert any(n.startswith("ups.") and p.grad is not None and p.grad.abs().sum() > 0 for n, p in g.named_parameters())
    g.eval()
    sem64, ids64 = conditioning(resize_nearest(labels, (64, 64)), resize_nearest(inst, (64, 64)), cfg)
    with torch.no_grad():
        assert g(sem64, ids64).shape == (1, 3, 64, 64)
    with pytest.raises(ValueError, match="multiple of 32"):
        g(sem[..., :20], ids[..., :20])


def _perturbed_in_a(g: torch.nn.Module, cfg: dict, layer: str) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """conv_img's output inside instance A of :func:`_scene` without and with noise added to
    ``layer``'s output inside A's touching same-class neighbour B; and whether the noise changed
    the output anywhere."""
    labels, inst = _scene()
    a_mask = torch.from_numpy(inst == 2001)  # touches 2002 (same class 2) along column 16
    g.eval()
    sem, ids = conditioning(labels, inst, cfg)
    b_id = int(ids[0][inst == 2002][0])
    captured: list[torch.Tensor] = []
    g.conv_img.register_forward_hook(lambda m, i, o: captured.append(o))

    def perturb(module, inputs, out):
        f = 32 // out.shape[-1]
        in_b = (ids[:, ::f, ::f] == b_id)[:, None]
        scale = out.abs().max()  # untrained spectral norms leave activations at any magnitude
        return out + scale * torch.randn(out.shape, generator=torch.Generator().manual_seed(0)) * in_b

    with torch.no_grad():
        g(sem, ids)
        handle = getattr(g, layer).register_forward_hook(perturb)
        g(sem, ids)
        handle.remove()
    return captured[0][0][:, a_mask], captured[1][0][:, a_mask], not torch.equal(captured[0], captured[1])


def test_generator_features_never_cross_touching_same_class_instances():
    """Perturb an intermediate feature map inside instance B only: in panoptic mode the output
    (before tanh) inside its touching same-class neighbour A is bit-identical; SPADE's is not."""
    for mode in ("panoptic", "semantic"):
        torch.manual_seed(10)
        cfg, g = _tiny(mode)
        clean, noisy, reached = _perturbed_in_a(g, cfg, "up_1")  # 8×8 features
        if mode == "panoptic":
            assert torch.equal(clean, noisy)
            assert reached  # the perturbation did reach instance B
        else:
            assert (clean - noisy).abs().max() > 1e-3 * clean.abs().max()


def test_plain_levels_share_context_below_and_isolate_segments_above():
    """plain_levels=4 (tiny: 1×1 to 8×8 plain, panoptic-aware from 16×16): noise in B at 4×4 reaches A
    through the plain 8×8 block; noise at 8×8 does not (every later layer is panoptic-aware). The
    plain levels have no hole encoders; full-panoptic weights load (minus those)."""
    torch.manual_seed(11)
    cfg, g = _tiny("panoptic", plain_levels=4)
    assert sorted(g.ups) == ["3", "4"]  # the ×2 steps into levels 4 and 5
    clean, noisy, _ = _perturbed_in_a(g, cfg, "up_0")  # level 2 (4×4)
    assert (clean - noisy).abs().max() > 1e-3 * clean.abs().max()
    clean, noisy, reached = _perturbed_in_a(g, cfg, "up_1")  # level 3 (8×8), the last plain one
    assert torch.equal(clean, noisy) and reached
    _, full = _tiny("panoptic")
    missing, unexpected = g.load_state_dict(full.state_dict(), strict=False)
    assert not missing and sorted({k.split(".")[1] for k in unexpected}) == ["0", "1", "2"]
    with pytest.raises(ValueError, match="plain_levels"):
        _tiny("panoptic", plain_levels=6)


def test_vae_generator_and_encoder():
    torch.manual_seed(7)
    cfg = P.CONFIGS["panoptic_tiny_vae"]
    nets = P.build(cfg)
    assert set(nets) == {"netG", "netE"}
    mu, logvar = nets["netE"](torch.rand(2, 3, 32, 32) * 2 - 1)
    assert mu.shape == logvar.shape == (2, 16)
    labels, inst = _scene()
    sem, ids = conditioning(labels, inst, cfg)
    z = P.reparameterize(mu[:1], logvar[:1])
    assert nets["netG"].eval()(sem, ids, z).shape == (1, 3, 32, 32)


def test_discriminator_is_spade_multiscale_patchgan():
    d = P.build_discriminator(P.CONFIGS["panoptic_tiny"], ndf=8)
    out = d(torch.randn(2, 3 + P.semantic_nc(P.CONFIGS["panoptic_tiny"]), 32, 32))
    assert len(out) == 2 and len(out[0]) == 5 and out[0][-1].shape[1] == 1
    keys = d.state_dict()
    assert "discriminator_0.model1.0.0.weight_orig" in keys and "discriminator_1.model4.0.bias" in keys


# ------------------------------------------------------------------------------ import
def test_import_official_spade_file(tmp_path, weights_dir):
    from engine.weights import Manifest, build_and_load, import_official

    torch.manual_seed(8)
    _, g = _tiny("semantic")
    for p in g.parameters():
        p.data.normal_()
    official = {f"module.{k}" if i % 2 else k: v for i, (k, v) in enumerate(g.state_dict().items())}
    path = tmp_path / "latest_net_G.pth"
    torch.save(official, path)  # official layout: torch.save(state_dict)
    entry = import_official([path], name="spade_test", family_name="panoptic", config_name="spade_tiny")
    assert entry.provenance["kind"] == "official"
    loaded = build_and_load(entry, Manifest())["netG"]
    for k, v in g.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    bad = {k: v for k, v in g.state_dict().items() if not k.startswith("up_3.")}
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(WeightsError, match="missing key 'up_3"):
        import_official([tmp_path / "bad.pth"], name="bad", family_name="panoptic", config_name="spade_tiny")
    with pytest.raises(WeightsError, match="has shape"):  # a SPADE file into a wrong-size config
        import_official([path], name="wrong", family_name="panoptic", config_name="spade_scenes")


# ------------------------------------------------------------------------------ 4. inputs
def test_panoptic_ids_convention():
    labels = np.array([[1, 1, 2, 2], [1, 1, 2, 2]])
    inst = np.array([[1, 1, 2001, 2002], [0, 1, 2001, 2002]])
    ids = panoptic_ids(labels, inst)
    assert ids[0, 0] == ids[1, 0] == ids[1, 1]  # stuff: id = class or 0
    assert len({ids[0, 2], ids[0, 3], ids[0, 0]}) == 3
    assert len(np.unique(panoptic_ids(labels))) == 2  # semantic only
    with pytest.raises(InputError, match="same size"):
        panoptic_ids(labels, inst[:, :3])
    made = make_instance_map(np.array([[0, 5, 5]]), [(5, np.array([[0, 1, 0]])), (5, np.array([[0, 0, 1]]))])
    assert made.tolist() == [[0, 5001, 5002]]


def test_conditioning_channels_and_label_remaps():
    cfg = P.CONFIGS["panoptic_tiny"]
    labels, inst = _scene()
    sem, ids = conditioning(labels, inst, cfg)
    assert sem.shape == (1, 5, 32, 32)
    assert torch.equal(sem[0, :4].sum(0), torch.ones(32, 32))
    edge = sem[0, 4]
    assert edge[8, 15] == 1 and edge[8, 16] == 1 and edge[8, 10] == 0  # between the two same-class things
    coco = P.CONFIGS["spade_coco"]
    assert remap_labels(np.array([[0, 181, 255]]), coco).tolist() == [[0, 181, 182]]
    ade = P.CONFIGS["spade_ade20k"]
    assert remap_labels(np.array([[0, 1, 150]]), ade).tolist() == [[150, 0, 149]]
    with pytest.raises(InputError, match=r"\[200\]"):
        remap_labels(np.array([[200]]), coco)
    with pytest.raises(InputError, match="does not know"):
        conditioning(np.full((4, 4), 9), None, cfg)


def test_coco_panoptic_import(tmp_path):
    seg = np.zeros((6, 8), np.int64)
    seg[:, :4] = 5_000_001   # stuff, COCO category 125 (coco-stuff label 124)
    seg[:3, 4:] = 1234       # person 1
    seg[3:, 4:] = 70000      # person 2 (touching person 1)
    seg[0, 0] = 0            # unannotated
    save_coco_png(tmp_path / "000001.png", seg)
    ann = {"annotations": [{"file_name": "000001.png", "segments_info": [
        {"id": 5_000_001, "category_id": 125}, {"id": 1234, "category_id": 1}, {"id": 70000, "category_id": 1}]}],
        "categories": [{"id": 1, "isthing": 1, "name": "person"}, {"id": 125, "isthing": 0, "name": "gravel"}]}
    (tmp_path / "panoptic.json").write_text(json.dumps(ann))
    labels, inst = import_coco_panoptic(tmp_path / "000001.png", tmp_path / "panoptic.json")
    assert labels[0, 0] == 255 and labels[1, 0] == 124 and labels[0, 5] == 0
    assert inst[0, 5] == 1 and inst[5, 5] == 2 and inst[1, 0] == 124  # person = class 0: 0·1000 + k
    ids = panoptic_ids(labels, inst)
    assert ids[0, 5] != ids[5, 5]
    labels_p, _ = import_coco_panoptic(tmp_path / "000001.png", ann["annotations"][0], "coco_panoptic")
    assert labels_p[1, 0] != 255 and labels_p[0, 5] == 0
    with pytest.raises(InputError, match="no annotation"):
        import_coco_panoptic(tmp_path / "other.png", tmp_path / "panoptic.json")


# ------------------------------------------------------------------------------ 5. task + CLI
def _register_tiny(weights_dir: Path, config_name: str, name: str) -> None:
    from engine.weights import Manifest, register_file, save_state_dicts

    torch.manual_seed(9)
    cfg = P.CONFIGS[config_name]
    nets = P.build(cfg)
    path = weights_dir / f"{name}.safetensors"
    save_state_dicts({k: m.state_dict() for k, m in nets.items()}, path)
    register_file(Manifest(), name=name, family="panoptic", config_name=config_name, config=cfg, path=path,
                  provenance={"kind": "trained-here", "command": "test"}, extra={"default": True})


def test_cli_generate_panoptic(tmp_path, weights_dir, monkeypatch):
    from engine.cli import main

    monkeypatch.setenv("I2I_THREADS", "1")  # the CLI sets torch's threads; tiny ops crawl oversubscribed
    from engine.io import load_image, save_instance_map, save_label_map

    _register_tiny(weights_dir, "panoptic_tiny", "pan_tiny")
    labels, inst = _scene(48, 40)
    save_label_map(tmp_path / "l.png", labels)
    save_instance_map(tmp_path / "i.png", inst)
    out = tmp_path / "out.png"
    rc = main(["generate", "panoptic", "--labels", str(tmp_path / "l.png"), "--instances", str(tmp_path / "i.png"),
               "--seed", "3", "--out", str(out), "--save-edges", str(tmp_path / "e.png")])
    assert rc == 0
    img = load_image(out)
    assert img.shape == (32, 32, 3) and img.std() > 0
    assert load_image(tmp_path / "e.png").max() == 255
    save_instance_map(tmp_path / "bad.png", inst[:10])
    assert main(["generate", "panoptic", "--labels", str(tmp_path / "l.png"), "--instances",
                 str(tmp_path / "bad.png"), "--out", str(out)]) == 2


def test_task_vae_seed_and_style(weights_dir):
    from engine.requests.panoptic import PanopticRequest
    from engine.tasks import CancelToken, LRUCache, ModelStore, make_context, run_request

    _register_tiny(weights_dir, "panoptic_tiny_vae", "pan_vae")
    labels, inst = _scene()
    cache = LRUCache(8)
    store = ModelStore()

    def go(**kw):
        kw = {"labels": FrozenArray(labels), "instances": FrozenArray(inst), **kw}
        req = PanopticRequest(model="pan_vae", **kw)
        return run_request(req, make_context(1, req, store, cache, CancelToken()))

    a, b, c = go(seed=1), go(seed=1), go(seed=2)
    assert np.array_equal(a.image, b.image) and not np.array_equal(a.image, c.image)
    style = FrozenArray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8))
    s1, s2 = go(seed=1, style_image=style), go(seed=1, style_image=style)
    assert np.array_equal(s1.image, s2.image) and "encoder" in s1.timings
    assert cache.hits >= 2  # conditioning and the style code are reused
    with pytest.raises(InputError, match="label map"):
        go(labels=None)
    with pytest.raises(InputError, match="same size"):
        go(instances=FrozenArray(inst[:, :20]))


def test_task_preview_size_and_cancel(weights_dir):
    from engine.requests.base import Cancelled
    from engine.requests.panoptic import PanopticRequest
    from engine.tasks import CancelToken, LRUCache, ModelStore, make_context, run_request

    _register_tiny(weights_dir, "spade_tiny", "spade_t")
    cfg = dict(P.CONFIGS["spade_tiny"], crop_size=64)
    from engine.tasks.panoptic import working_size

    assert working_size(cfg, None) == (64, 64) and working_size(cfg, 40) == (32, 32)
    labels, _ = _scene()
    req = PanopticRequest(model="spade_t", labels=FrozenArray(labels))
    res = run_request(req, make_context(1, req, ModelStore(), LRUCache(4), CancelToken()))
    assert res.image.shape == (32, 32, 3) and "labels" not in res.aux
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        run_request(req, make_context(2, req, ModelStore(), LRUCache(4), token))
