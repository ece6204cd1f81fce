"""Face measures for CoCosNet face models (celebahqedge/celebahq) on the ``faces`` recipe: the two
tasks the studio runs with them, each beside an untrained network of the same config (the floor)
and the unchanged sources (the baseline).

Each source face of the split is paired with an exemplar of another identity: the next sample of
the split in sorted id order (see :func:`engine.metrics.eval_set.load_eval_set`'s
``face_exemplars``).

* Exemplar translation (:class:`~engine.requests.cocosnet.ExemplarRequest`, what ``i2i generate
  cocosnet --config celebahqedge --input <parsing> --input-photo <photo> --exemplar <face>
  --exemplar-map <its parsing>`` runs): ``face_rate``, outputs in which dlib's HOG detector finds a
  face (on the output upsampled to 256², as :mod:`engine.metrics.faces` does).
* Makeup transfer (:class:`~engine.requests.cocosnet.MakeupRequest`, what ``i2i generate makeup``
  runs, regions lips and skin, strength 1):

  - ``face_rate`` of the outputs;
  - ``lip_dE`` / ``skin_dE``: CIELAB ΔE (CIE76) between the median Lab colour of the region in the
    output (the source's parsing map) and in the exemplar (its own parsing map), averaged over the
    pairs; lips = ``u_lip`` + ``l_lip``, skin = ``skin``. ``lip_dE_ratio`` / ``skin_dE_ratio``: over
    the same distance of the unchanged source (bar: ≤ 0.6);
  - ``psnr_outside``: PSNR between output and source over the pixels outside the blended regions
    (the chosen regions of the parsing map grown by 2 pixels), capped at 100 dB (bar: ≥ 40);
  - ``seam_ratio``: mean absolute gradient on the regions' boundary (a band one pixel either side)
    in the outputs over that in the sources; 1.0 = as smooth as the source, above = a harder seam.

The face rate needs dlib (``i2i data fetch dlib-bin dlib-data``); without it the rates are left
out (NaN, a note says what to fetch) and the colour/PSNR/seam measures are still reported.
"""
from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..requests.base import InputError, frozen
from .eval_set import EvalSet
from .faces import DETECTOR_TOOLS, Generate, face_landmarks, generator_for, missing_tools, untrained_floor
from .image import psnr
from .speckle import to_lab

MAX_PAIRS = 60  # `i2i eval` evaluates at most this many pairs unless --n says otherwise
MAKEUP_REGIONS = ("lips", "skin")  # the makeup task's regions (engine.tasks.makeup.REGION_PARTS)
MEASURE_PARTS = {"lip": ("u_lip", "l_lip"), "skin": ("skin",)}  # colour distance regions
DE_RATIO_BAR = 0.6
PSNR_BAR = 40.0
PSNR_CAP = 100.0
SHEET_ROWS = 16  # pairs on the contact sheet

FaceFinder = Callable[[np.ndarray], bool]


# --------------------------------------------------------------------------------------------
# The judge
# --------------------------------------------------------------------------------------------
def face_finder() -> FaceFinder | None:
    """``image -> bool``: dlib finds a face on the image upsampled to 256²; None without dlib."""
    from ..data.faces import landmarker

    if landmarker() is None:
        return None
    return lambda image: face_landmarks(image) is not None


def _face_rate(find: FaceFinder | None, images: Sequence[np.ndarray]) -> float:
    return float(np.mean([find(im) for im in images])) if find is not None and images else float("nan")


# --------------------------------------------------------------------------------------------
# Pure measures
# --------------------------------------------------------------------------------------------
def part_map(parsing: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The parsing map at ``shape`` (H, W), resized nearest where it differs."""
    from ..io import resize_nearest

    parsing = np.asarray(parsing)
    return parsing if parsing.shape[:2] == tuple(shape) else resize_nearest(parsing, tuple(shape))


def part_mask(parsing: np.ndarray, parts: Sequence[str], shape: tuple[int, int]) -> np.ndarray:
    """Bool mask (H, W = ``shape``) of the named CelebAMask-HQ parts."""
    from ..inputs.cocosnet import celebamask_names

    names = celebamask_names()
    return np.isin(part_map(parsing, shape), [names.index(p) for p in parts if p in names])


def median_lab(image: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
    """The per-channel median CIELAB colour (L 0..100) of ``image``'s pixels in ``mask``; None if empty."""
    if not mask.any():
        return None
    return np.median(to_lab(image)[mask], axis=0)


def region_delta_e(image: np.ndarray, parsing: np.ndarray, exemplar: np.ndarray, exemplar_map: np.ndarray,
                   parts: Sequence[str]) -> float:
    """ΔE (CIE76) between the median colours of ``parts`` in ``image`` and in ``exemplar`` (each
    region from its own parsing map); NaN where either region is empty."""
    a = median_lab(image, part_mask(parsing, parts, image.shape[:2]))
    b = median_lab(exemplar, part_mask(exemplar_map, parts, exemplar.shape[:2]))
    return float(np.linalg.norm(a - b)) if a is not None and b is not None else float("nan")


def outside_mask(parsing: np.ndarray, regions: Sequence[str] = MAKEUP_REGIONS, margin: int = 2) -> np.ndarray:
    """Pixels that are not makeup: outside the chosen regions (hard, from the parsing map) grown by
    ``margin`` pixels, whatever the blend's own mask reaches (so a blend that spills fails)."""
    from ..tasks.makeup import region_mask

    hard = (region_mask(parsing, regions, feather=0) > 0.5).astype(np.uint8)
    return cv2.dilate(hard, np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)) == 0


def psnr_outside(output: np.ndarray, source: np.ndarray, parsing: np.ndarray,
                 regions: Sequence[str] = MAKEUP_REGIONS) -> float:
    """PSNR (dB, range 255) between output and source over :func:`outside_mask`; inf where they are
    equal there, NaN where nothing lies outside."""
    if output.shape != source.shape:
        raise InputError(f"output {output.shape} and source {source.shape} differ in size")
    keep = outside_mask(part_map(parsing, source.shape[:2]), regions)
    if not keep.any():
        return float("nan")
    return psnr(output[keep], source[keep])


def boundary_band(parsing: np.ndarray, regions: Sequence[str] = MAKEUP_REGIONS) -> np.ndarray:
    """The pixels within one pixel of the chosen regions' (hard) boundary, both sides."""
    from ..tasks.makeup import region_mask

    hard = (region_mask(parsing, regions, feather=0) > 0.5).astype(np.uint8)
    kernel = np.ones((3, 3), np.uint8)
    return (cv2.dilate(hard, kernel) - cv2.erode(hard, kernel)) > 0


def boundary_gradient(image: np.ndarray, parsing: np.ndarray, regions: Sequence[str] = MAKEUP_REGIONS) -> float:
    """Mean absolute gradient (central differences, magnitude, averaged over RGB) on the regions'
    boundary band; NaN where there is no boundary."""
    band = boundary_band(part_map(parsing, image.shape[:2]), regions)
    if not band.any():
        return float("nan")
    x = image.astype(np.float64)
    gy, gx = np.gradient(x, axis=(0, 1))
    magnitude = np.sqrt(gx * gx + gy * gy).mean(axis=2)
    return float(magnitude[band].mean())


# --------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------
def _pairs(es: EvalSet) -> list[Any]:
    cases = [c for c in es.cases if "exemplar" in c.inputs]
    if not cases:
        raise InputError("CoCosNet face measures need sources with parsing maps (parsing/<id>.png) and at least "
                         "two samples in the split (each source's exemplar is another sample)")
    return cases


def finite_mean(values: Sequence[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def ratio_of_sums(num: Sequence[float], den: Sequence[float]) -> float:
    """sum(num) / sum(den) over the pairs where both are finite (NaN where none are)."""
    ok = [(a, b) for a, b in zip(num, den, strict=True) if np.isfinite(a) and np.isfinite(b)]
    total = sum(b for _, b in ok)
    return sum(a for a, _ in ok) / total if ok and total > 0 else float("nan")


def _makeup_measures(outputs: Sequence[np.ndarray], cases: Sequence[Any], find: FaceFinder | None) -> dict[str, float]:
    out: dict[str, float] = {"face_rate": _face_rate(find, outputs)}
    for name, parts in MEASURE_PARTS.items():
        model = [region_delta_e(o, c.inputs["parsing"], c.inputs["exemplar"], c.inputs["exemplar_map"], parts)
                 for o, c in zip(outputs, cases, strict=True)]
        source = [region_delta_e(c.inputs["source"], c.inputs["parsing"], c.inputs["exemplar"],
                                 c.inputs["exemplar_map"], parts) for c in cases]
        out[f"{name}_dE"] = finite_mean(model)
        out[f"{name}_dE_ratio"] = ratio_of_sums(model, source)
    out["psnr_outside"] = finite_mean([min(psnr_outside(o, c.inputs["source"], c.inputs["parsing"]), PSNR_CAP)
                                       for o, c in zip(outputs, cases, strict=True)])
    out["seam_ratio"] = ratio_of_sums([boundary_gradient(o, c.inputs["parsing"])
                                       for o, c in zip(outputs, cases, strict=True)],
                                      [boundary_gradient(c.inputs["source"], c.inputs["parsing"]) for c in cases])
    return out


def face_report(generate: Generate, model: str, es: EvalSet, *, find: FaceFinder | None, seed: int = 0,
                device: str = "cpu", exemplar_outputs: Sequence[np.ndarray] | None = None,
                keep: dict[str, list[np.ndarray]] | None = None) -> dict[str, Any]:
    """The module's measures for one model (``generate`` runs its requests). Case k runs with seed
    ``seed + k``, as ``i2i eval``'s outputs do; ``exemplar_outputs`` (one per case of ``es``, already
    generated that way) skips regenerating the exemplar translations. ``keep`` receives the outputs
    (``exemplar``, ``makeup``; one per pair) for a contact sheet."""
    from ..requests.cocosnet import ExemplarRequest, MakeupRequest

    t0 = time.perf_counter()
    cases = _pairs(es)
    seeds = {id(c): seed + k for k, c in enumerate(es.cases)}
    if exemplar_outputs is not None:
        by_case = {id(c): o for c, o in zip(es.cases, exemplar_outputs, strict=True)}
        translated = [by_case[id(c)] for c in cases]
    else:
        translated = [generate(ExemplarRequest(
            model=model, seed=seeds[id(c)], device=device, input_map=frozen(c.inputs["parsing"]),
            input_photo=frozen(c.inputs["source"]), exemplar=frozen(c.inputs["exemplar"]),
            exemplar_map=frozen(c.inputs["exemplar_map"]))) for c in cases]
    made_up = [generate(MakeupRequest(
        model=model, seed=seeds[id(c)], device=device, portrait=frozen(c.inputs["source"]),
        portrait_map=frozen(c.inputs["parsing"]), exemplar=frozen(c.inputs["exemplar"]),
        exemplar_map=frozen(c.inputs["exemplar_map"]), regions=MAKEUP_REGIONS, strength=1.0)) for c in cases]
    if keep is not None:
        keep.update(exemplar=list(translated), makeup=made_up)
    return {"exemplar": {"face_rate": _face_rate(find, translated)},
            "makeup": _makeup_measures(made_up, cases, find),
            "pairs": len(cases), "seconds": time.perf_counter() - t0}


def source_baseline(es: EvalSet, find: FaceFinder | None) -> dict[str, Any]:
    """The unchanged sources as outputs of both tasks (ratios 1, PSNR at the cap)."""
    cases = _pairs(es)
    sources = [c.inputs["source"] for c in cases]
    rate = _face_rate(find, sources)
    return {"exemplar": {"face_rate": rate}, "makeup": _makeup_measures(sources, cases, find), "pairs": len(cases)}


def bar_notes(section: dict[str, Any]) -> list[str]:
    """The makeup bars, judged for the model column."""
    m = section.get("model", {}).get("makeup", {})

    def verdict(value: float, ok: bool) -> str:
        return f"{value:.3f} ({'pass' if ok else 'FAIL'})" if np.isfinite(value) else "n/a"

    lip, skin, psnr = (m.get(k, float("nan")) for k in ("lip_dE_ratio", "skin_dE_ratio", "psnr_outside"))
    return [f"makeup bars (model): lip ΔE ÷ source's ≤ {DE_RATIO_BAR}: {verdict(lip, lip <= DE_RATIO_BAR)}; "
            f"skin ΔE ÷ source's ≤ {DE_RATIO_BAR}: {verdict(skin, skin <= DE_RATIO_BAR)}; "
            f"PSNR outside the regions ≥ {PSNR_BAR:.0f} dB: {verdict(psnr, psnr >= PSNR_BAR)}"]


def cocosnet_faces(model: str, es: EvalSet, *, seed: int = 0, device: str = "cpu",
                   exemplar_outputs: Sequence[np.ndarray] | None = None,
                   notes: list[str] | None = None, sheet: Path | None = None) -> dict[str, Any]:
    """``i2i eval``'s face section for a CoCosNet face model: the model, an untrained network of its
    config (floor, registered in a temporary weights folder) and the unchanged sources (baseline).
    ``sheet``: contact sheet of the first 16 pairs, source | exemplar | exemplar translation | makeup."""
    from ..weights import Manifest

    notes = notes if notes is not None else []
    find = face_finder()
    if find is None:
        missing = missing_tools(DETECTOR_TOOLS)
        how = f"`i2i data fetch {' '.join(missing or DETECTOR_TOOLS)}`"
        notes.append(f"face_rate skipped: it needs dlib's face detector ({how}"
                     f"{'' if missing else '; fetched, but dlib does not load'}); the colour, PSNR and seam "
                     f"measures do not")
    entry = Manifest().get(model)
    kept: dict[str, list[np.ndarray]] = {}
    out = {"model": face_report(generator_for(model, device=device), model, es, find=find, seed=seed,
                                device=device, exemplar_outputs=exemplar_outputs, keep=kept)}
    if sheet is not None:
        from .image import save_sheet

        pairs = list(zip(_pairs(es), kept["exemplar"], kept["makeup"], strict=True))[:SHEET_ROWS]
        rows = [[c.inputs["source"], c.inputs["exemplar"], translated, made_up] for c, translated, made_up in pairs]
        notes.append(f"contact sheet (source | exemplar | exemplar translation | makeup): "
                     f"{save_sheet(rows, sheet, scale=3)}")
    with tempfile.TemporaryDirectory() as tmp:
        floor = untrained_floor(entry.config_name, dict(entry.config), Path(tmp), seed=seed, family="cocosnet")
        out["floor (untrained)"] = face_report(generator_for("untrained", device=device, manifest=floor),
                                               "untrained", es, find=find, seed=seed, device=device)
    out["sources (unchanged)"] = source_baseline(es, find)
    notes += bar_notes(out)
    notes.append(f"CoCosNet faces: {out['model']['pairs']} source/exemplar pairs (exemplar: the split's next "
                 f"sample in sorted id order); makeup regions {'+'.join(MAKEUP_REGIONS)}, ΔE = CIE76 of "
                 f"region medians; seam_ratio 1.0 = as smooth as the source")
    return out


__all__ = ["MAX_PAIRS", "boundary_gradient", "cocosnet_faces", "face_finder", "face_report", "finite_mean",
           "median_lab", "outside_mask", "psnr_outside", "ratio_of_sums", "region_delta_e", "source_baseline"]
