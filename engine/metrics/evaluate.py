"""``i2i eval``: run a model (or read a folder of its outputs) over a dataset split and measure it.

Metrics, each only where it is defined:
- ``FD-<backbone>``: Fréchet distance between pool features of the outputs and of the split's real
  images (MobileNetV2 or VGG19, never called FID). Biased upward for small N; compare equal N only.
- ``PD-<backbone>``: mean learned-free perceptual distance output ↔ ground truth.
- ``PSNR``/``SSIM``: output ↔ ground truth (procedural pairs have an exact one).
- ``mIoU``/``pixel_acc``: the small scenes segmenter run on the outputs, against the input label map
  (mask faithfulness); also reported on the real images as the segmenter's own ceiling.
- StarGAN v2 on faces: the face measures of :mod:`engine.metrics.faces` (dlib, gender classifier,
  diversity, interpolation), beside an untrained floor and the unchanged sources.
- CoCosNet scene models on scenes: :mod:`engine.metrics.cocosnet_scenes` (mIoU, per-class colour
  distance to the exemplar, FD) beside an untrained floor, the raw warp and the real photos.
- CoCosNet pose models on poses: the silhouette and garment-colour measures of
  :mod:`engine.metrics.cocosnet_poses`, beside an untrained floor, the raw warp and the real photos.
- CoCosNet face models on faces: the exemplar-translation and makeup measures of
  :mod:`engine.metrics.cocosnet_faces` (face rate, region colour distance to the exemplar, PSNR
  outside the regions, seam), beside an untrained floor and the unchanged sources; at most
  ``MAX_PAIRS`` (60) samples unless ``--n`` says otherwise.

Dataset layouts (see the project's data conventions): ``scenes`` (<split>/image, label, instance,
exemplar), ``faces`` (<split>/female, male), ``poses`` (<split>/image, pose, parts, exemplar,
exemplar_pose), ``sketches`` (<split>/<class>/<id>.png = [edges | photo]).
Model adapters: panoptic and cocosnet on scenes, stargan2 and cocosnet (face configs) on faces,
cocosnet (pose configs) on poses, edgegan on sketches.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..io import load_image
from ..requests.base import InputError, frozen
from .eval_set import (
    FACE_LAYOUT,
    OUTPUT_NAMING,
    POSE_LAYOUT,
    SCENE_LAYOUT,
    SKETCH_LAYOUT,
    Case,
    EvalSet,
    detect_layout,
    load_eval_set,
    no_samples_message,
    split_sizes,
)
from .objects import sketch_object_report


def _request_for(family: str, layout: str, entry_name: str, case: Case, *, seed: int, device: str,
                 domains: list[str]):
    """The family's request for one case; InputError when the pair (family, layout) has no adapter."""
    common = {"model": entry_name, "seed": seed, "device": device}
    if family == "panoptic" and layout == SCENE_LAYOUT:
        from ..requests.panoptic import PanopticRequest

        inst = case.inputs["instances"]
        return PanopticRequest(labels=frozen(case.inputs["labels"]),
                               instances=frozen(inst) if inst is not None else None, **common)
    if family == "cocosnet" and layout == SCENE_LAYOUT:
        from ..requests.cocosnet import ExemplarRequest

        if case.inputs["exemplar"] is None:
            raise InputError(f"sample {case.id} has no exemplar rendering")
        # the exemplar rendering has the same layout, so its semantics are the input's
        return ExemplarRequest(input_map=frozen(case.inputs["labels"]), exemplar=frozen(case.inputs["exemplar"]),
                               exemplar_map=frozen(case.inputs["labels"]), **common)
    if family == "cocosnet" and layout == FACE_LAYOUT:
        from ..requests.cocosnet import ExemplarRequest

        if "parsing" not in case.inputs:
            raise InputError(f"face {case.id} has no parsing map (parsing/{case.id}.png): CoCosNet face models "
                             f"translate from it")
        if "exemplar" not in case.inputs:
            raise InputError(f"face {case.id} has no exemplar: CoCosNet pairs each face with another sample "
                             f"of the split, and this split has one")
        # what `i2i generate cocosnet --input <parsing> --input-photo <photo> --exemplar <face>
        # --exemplar-map <its parsing>` runs
        return ExemplarRequest(input_map=frozen(case.inputs["parsing"]), input_photo=frozen(case.inputs["source"]),
                               exemplar=frozen(case.inputs["exemplar"]),
                               exemplar_map=frozen(case.inputs["exemplar_map"]), **common)
    if family == "cocosnet" and layout == POSE_LAYOUT:
        from .cocosnet_poses import pose_request

        return pose_request(entry_name, case, seed=seed, device=device)
    if family == "stargan2" and layout == FACE_LAYOUT:
        from ..requests.stargan2 import StarGANLatentRequest

        if case.target_group not in domains:
            raise InputError(f"model {entry_name!r} has domains {domains}, no {case.target_group!r}")
        return StarGANLatentRequest(source=frozen(case.inputs["source"]),
                                    target_domain=domains.index(case.target_group), **common)
    if family == "edgegan" and layout == SKETCH_LAYOUT:
        from ..requests.edgegan import SketchObjectRequest

        return SketchObjectRequest(sketch=frozen(case.inputs["sketch"]), class_name=case.inputs["class_name"],
                                   **common)
    raise InputError(f"`i2i eval` has no adapter for a {family} model on a {layout} dataset "
                     f"(supported: panoptic/cocosnet on scenes, stargan2/cocosnet on faces, cocosnet on poses, "
                     f"edgegan on sketches)")


def model_outputs(model: str, es: EvalSet, *, seed: int, device: str) -> tuple[list[np.ndarray], dict[str, Any]]:
    """Outputs for every case: from a folder of ``<id>.png`` files, or by running a manifest entry."""
    results, source = model_results(model, es, seed=seed, device=device)
    return [_image(r) for r in results], source


def _image(result: Any) -> np.ndarray:
    """A run's output image, or a folder's image as it is."""
    return result.image if hasattr(result, "image") else result


def model_results(model: str, es: EvalSet, *, seed: int, device: str,
                  manifest: Any = None) -> tuple[list[Any], dict[str, Any]]:
    """What :func:`model_outputs` returns, but a run model's whole results (image and aux, e.g.
    CoCosNet's warped exemplar); a folder's outputs stay images. ``manifest``: where ``model`` is
    registered (default: the project's weights folder)."""
    folder = Path(model)
    if folder.is_dir():
        missing = [c.id for c in es.cases if not (folder / f"{c.id}.png").exists()]
        if missing:
            wanted = {f"{c.id}.png" for c in es.cases}
            others = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.png")
                            if str(p.relative_to(folder)) not in wanted)
            found = f"; it holds other PNGs, e.g. {', '.join(others[:3])}" if others else ""
            raise InputError(f"{folder} has no output for sample {missing[0]} "
                             f"(expected {folder / (missing[0] + '.png')}; "
                             f"{len(missing)} of {len(es.cases)} missing): `i2i eval` reads "
                             f"{OUTPUT_NAMING[es.layout]}{found}")
        return [load_image(folder / f"{c.id}.png") for c in es.cases], {"source": "folder", "folder": str(folder)}
    import torch

    from ..devices import configure_threads
    from ..tasks import CancelToken, LRUCache, ModelStore, make_context, run_request
    from ..weights import Manifest

    entry = (manifest or Manifest()).get(model)
    domains: list[str] = []
    if entry.family == "stargan2":
        from ..nets.stargan2 import domain_names

        domains = list(domain_names(entry.config))
    # the caller's thread count (`i2i eval --threads`), not the GUI default of all cores but one: on
    # busy cores an unasked-for second thread slows every convolution several times over
    configure_threads(torch.get_num_threads())
    store = ModelStore(manifest=manifest) if manifest is not None else ModelStore()  # loaded once for all cases
    outs, t0 = [], time.perf_counter()
    for k, c in enumerate(es.cases):
        req = _request_for(entry.family, es.layout, entry.name, c, seed=seed + k, device=device, domains=domains)
        outs.append(run_request(req, make_context(k, req, store, LRUCache(1), CancelToken())))
    return outs, {"source": "model", "family": entry.family, "config": entry.config_name,
                  "seconds_per_image": (time.perf_counter() - t0) / max(len(es.cases), 1)}


# --------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------
def _resize_to(img: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if img.shape[:2] == shape:
        return img
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize((shape[1], shape[0]), Image.BICUBIC))


def _pick_backbone(backbone: Any):
    from .features import Features, load_features

    if isinstance(backbone, Features):  # an already-built extractor (tests, notebooks)
        return backbone
    if backbone == "none":
        return None
    prefer = ("mobilenet_v2", "vgg19") if backbone == "auto" else (backbone,)
    return load_features(prefer=prefer)


def measure(es: EvalSet, outputs: list[np.ndarray], *, backbone: Any = "auto", segmenter: str | None = None,
            notes: list[str] | None = None) -> dict[str, Any]:
    """All metrics that the data supports; problems that skip a metric are appended to ``notes``."""
    import torch

    from .distribution import (
        FeatureStats,
        fd_name,
        frechet_distance_stats,
        images_to_tensor,
        pd_name,
        perceptual_distance,
        pooled_features,
    )
    from .image import psnr, ssim

    notes = notes if notes is not None else []
    metrics: dict[str, Any] = {}
    info: dict[str, Any] = {}
    pairs = [(o, c.ground_truth) for o, c in zip(outputs, es.cases, strict=True) if c.ground_truth is not None]
    resized = False
    if pairs:
        fixed = []
        for o, gt in pairs:
            if o.shape[:2] != gt.shape[:2]:
                resized = True
            fixed.append((_resize_to(o, gt.shape[:2]), gt))
        pairs = fixed
        if resized:
            notes.append("outputs were resized (bicubic) to the ground truth's size for PSNR/SSIM/PD")
        metrics["PSNR"] = float(np.mean([min(psnr(o, gt), 100.0) for o, gt in pairs]))
        metrics["SSIM"] = float(np.mean([ssim(o, gt) for o, gt in pairs])) if min(pairs[0][1].shape[:2]) >= 11 else None

    feats = _pick_backbone(backbone)
    if feats is None and backbone != "none":
        notes.append("no feature backbone in weights/ (run `i2i data fetch-backbone`): FD and PD skipped")
    if feats is not None:
        info["backbone"] = {"name": feats.display, "source": feats.source}
        with torch.no_grad():
            groups = sorted({c.target_group for c in es.cases})
            # Faces: each output against the real images of its target domain, one FD per domain,
            # averaged (pooling the domains would make the untranslated sources match the real set).
            fds, src_fds, n_fake = [], [], 0
            for g in groups:
                outs_g = [o for o, c in zip(outputs, es.cases, strict=True) if c.target_group == g]
                real_g = es.real.get(g) or es.real.get("", [])
                size = real_g[0].shape[:2] if real_g else outs_g[0].shape[:2]
                fake_stats, real_stats = FeatureStats(feats.spec.pooled_dim), FeatureStats(feats.spec.pooled_dim)
                fake_stats.update(pooled_features(feats, images_to_tensor([_resize_to(o, size) for o in outs_g])))
                real_stats.update(pooled_features(feats, images_to_tensor([_resize_to(r, size) for r in real_g])))
                if fake_stats.n < 2 or real_stats.n < 2:
                    continue
                n_fake += fake_stats.n
                fds.append(frechet_distance_stats(fake_stats, real_stats))
                if es.layout == FACE_LAYOUT:  # baseline: the untranslated sources, same statistics
                    srcs = [c.inputs["source"] for c in es.cases if c.target_group == g]
                    src_stats = FeatureStats(feats.spec.pooled_dim)
                    src_stats.update(pooled_features(feats, images_to_tensor([_resize_to(o, size) for o in srcs])))
                    src_fds.append(frechet_distance_stats(src_stats, real_stats))
            if fds:
                metrics[fd_name(feats)] = float(np.mean(fds))
                if src_fds:
                    metrics[f"{fd_name(feats)} sources (untranslated)"] = float(np.mean(src_fds))
                if len(fds) > 1:
                    notes.append(f"FD per target domain, averaged over {len(fds)} domains")
                if n_fake < feats.spec.pooled_dim:
                    notes.append(f"FD from {n_fake} outputs in {feats.spec.pooled_dim} dimensions: strongly biased "
                                 f"upward, compare only at equal N")
            else:
                notes.append("FD needs at least 2 outputs and 2 real images (per target domain)")
            if pairs and min(pairs[0][1].shape[:2]) >= 32:
                dists = []
                for i in range(0, len(pairs), 8):
                    a = images_to_tensor([o for o, _ in pairs[i:i + 8]])
                    b = images_to_tensor([gt for _, gt in pairs[i:i + 8]])
                    dists.append(perceptual_distance(feats, a, b))
                metrics[pd_name(feats)] = float(torch.cat(dists).mean())

    labelled = [(o, c.labels) for o, c in zip(outputs, es.cases, strict=True) if c.labels is not None]
    if labelled:
        from .segmentation import ConfusionMatrix
        from .segmenter import load_segmenter

        try:
            seg = load_segmenter(segmenter)
        except Exception as exc:  # a missing/broken segmenter only skips mIoU
            notes.append(f"mIoU skipped: {exc}")
        else:
            info["segmenter"] = {"name": seg.name, "size": seg.config.get("size")}
            for label, images in (("", [o for o, _ in labelled]), ("real ", [c.ground_truth for c in es.cases
                                                                          if c.labels is not None])):
                cm = ConfusionMatrix(seg.num_classes, seg.ignore_index)
                for img, (_, lab) in zip(images, labelled, strict=True):
                    cm.update(lab, seg.predict(_resize_to(img, lab.shape)))
                metrics[f"{label}mIoU"] = cm.miou()
                metrics[f"{label}pixel_acc"] = cm.pixel_accuracy()
    return {"metrics": metrics, "info": info}


def evaluate(model: str, data: Path, *, split: str = "test", n: int | None = None, seed: int = 0,
             device: str = "cpu", backbone: Any = "auto", segmenter: str | None = None,
             reference: str = "auto", centroid_split: str = "train", sheet: Path | None = None) -> dict[str, Any]:
    """Load the split, produce outputs, measure; returns the JSON-ready report. EdgeGAN models on a
    sketches dataset also get the object measures of :mod:`engine.metrics.objects` (its classifier's
    centroids from ``centroid_split``, which must be data the model was not trained on)."""
    data = Path(data)
    family, input_kind = "", None
    if not Path(model).is_dir():
        from ..weights import Manifest

        entry = Manifest().get(model)
        family, input_kind = entry.family, entry.config.get("input_kind")
    if reference == "auto":
        reference = "exemplar" if family == "cocosnet" else "image"
    notes: list[str] = []
    face_pairs = family == "cocosnet" and detect_layout(data, split) == FACE_LAYOUT
    if face_pairs and input_kind not in ("celebahq_edges", "celebahq_parsing"):
        raise InputError(f"`i2i eval` runs CoCosNet on faces only for face models (celebahqedge, celebahq); "
                         f"{model!r} takes {input_kind} input")
    if face_pairs and n is None:
        from .cocosnet_faces import MAX_PAIRS

        total = split_sizes(data)[split]
        if total > MAX_PAIRS:
            n = MAX_PAIRS
            notes.append(f"CoCosNet on faces: a seeded {MAX_PAIRS} of the split's {total} samples (--n to change)")
    es = load_eval_set(data, split, n=n, seed=seed, reference=reference, face_exemplars=face_pairs)
    if not es.cases:
        raise InputError(no_samples_message(data, split))
    if face_pairs:  # exemplar translation has no target gender: FD against all of the split's faces
        for c in es.cases:
            c.target_group = ""
    results, source = model_results(model, es, seed=seed, device=device)
    outputs = [_image(r) for r in results]
    warps = [r.aux["warped_exemplar"] for r in results] if family == "cocosnet" and source["source"] == "model" \
        else None

    def floor_outputs(manifest: Any) -> list[np.ndarray]:  # the untrained floor, run the same way
        return [r.image for r in model_results("untrained", es, seed=seed, device=device, manifest=manifest)[0]]

    result = measure(es, outputs, backbone=backbone, segmenter=segmenter, notes=notes)
    if es.layout == SKETCH_LAYOUT and family == "edgegan":

        result["objects"] = sketch_object_report(model, es, outputs, data=data, seed=seed, device=device,
                                                 centroid_split=centroid_split)
    if es.layout == FACE_LAYOUT and family == "stargan2":
        from .faces import stargan2_faces

        faces = stargan2_faces(model, es, seed=seed, device=device, features=_pick_backbone(backbone), notes=notes)
        if faces is not None:
            result["faces"] = faces
        if sheet is not None:
            from .faces import stargan2_sheet

            notes.append(f"contact sheet: {stargan2_sheet(model, es, sheet, seed=seed, device=device)}")
    if face_pairs:
        from .cocosnet_faces import cocosnet_faces

        # the sources are the very faces FD compares with: their "baseline" FD is 0 by construction
        for k in [k for k in result["metrics"] if k.endswith(" sources (untranslated)")]:
            del result["metrics"][k]

        result["faces"] = cocosnet_faces(model, es, seed=seed, device=device, exemplar_outputs=outputs, notes=notes,
                                         sheet=sheet)
    if es.layout == SCENE_LAYOUT and family == "cocosnet":
        from .cocosnet_scenes import cocosnet_scenes

        result["scenes"] = cocosnet_scenes(
            model, es, outputs, warps, floor_outputs, seed=seed, notes=notes, sheet=sheet,
            measure=lambda e, o: measure(e, o, backbone=backbone, segmenter=segmenter, notes=[]))
    if es.layout == POSE_LAYOUT and family == "cocosnet":
        from .cocosnet_poses import cocosnet_poses

        result["poses"] = cocosnet_poses(model, es, outputs, warps, floor_outputs, seed=seed, notes=notes,
                                         sheet=sheet)
    label = Path(model).name if Path(model).is_dir() else model
    return {"model": model, "model_label": label, "data": str(data), "split": split, "layout": es.layout,
            "n": len(es.cases), "reference": reference if es.layout == SCENE_LAYOUT else None,
            "generation": source, **result, "notes": notes}


def format_table(report: dict[str, Any]) -> str:
    """A two-column plain-text table of the report's metrics."""
    rows = [("model", str(report["model"])), ("data", f"{report['data']} [{report['split']}, {report['layout']}]"),
            ("samples", str(report["n"]))]
    for k, v in report["info"].items():
        rows.append((k, ", ".join(f"{a}={b}" for a, b in v.items())))
    for k, v in report["metrics"].items():
        rows.append((k, "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"))
    width = max(len(k) for k, _ in rows)
    objects = report.get("objects")
    if objects:
        cols = ("model", "floor (untrained)", "ceiling (real photos)")
        measures = [(k, objects[k]) for k in ("class_accuracy", "iou_own", "iou_other", "iou_margin") if k in objects]
        rows.append(("objects", " | ".join(cols)))
        rows += [(k, " | ".join(f"{v.get(c, float('nan')):.3f}" for c in cols)) for k, v in measures]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v}" for k, v in rows]
    if report.get("faces"):
        from .faces import format_faces

        lines += ["", *format_faces(report["faces"])]
    for section in ("scenes", "poses"):
        if report.get(section):
            lines += ["", *format_columns(section, report[section])]
    lines += [f"note: {n}" for n in report["notes"]]
    return "\n".join(lines)


def format_columns(title: str, section: dict[str, Any]) -> list[str]:
    """Rows: measure | one column per dict-valued entry of ``section`` (model, baselines, floor)."""
    cols = [c for c, v in section.items() if isinstance(v, dict)]
    lines = [f"{title:<26}" + "".join(f"{c:>20}" for c in cols)]
    for k in section[cols[0]]:
        vals = [section[c].get(k) for c in cols]
        lines.append(f"{k:<26}" + "".join(f"{v:>20.3f}" if isinstance(v, float) and np.isfinite(v) else f"{'-':>20}"
                                          for v in vals))
    return lines


def json_safe(o: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python, NaN/inf to null (strict JSON has neither)."""
    if isinstance(o, dict):
        return {str(k): json_safe(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [json_safe(v) for v in o]
    if isinstance(o, (np.floating, np.integer)):
        o = o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return o
