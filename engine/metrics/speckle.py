"""Speckle: isolated off-colour pixel clusters in a generated image, judged against its label map.

Two counts, both in CIELAB (ΔE76), on an image and the panoptic map it was generated from:

* ``speckle_per_10k``: clusters (8-connected, at most ``max_cluster`` pixels) of pixels whose colour
  lies more than ``delta_e`` from the median colour of their own segment, counted only where the map
  is uniform (over 1 px from any segment boundary: a boundary's blend is not speckle), per 10,000
  pixels of that interior. Real photos have some (textures with dark pores and highlights), so the
  rate is read beside the real photos' rate and the untrained floor's.
* ``small_offcolour``: of the map's small segments (at most ``small_area`` pixels: a 4×4 flower),
  the fraction whose median output colour lies farther from the colours of its class in real photos
  than 95% of that class's real pixels do (:class:`ClassColours`). This is the "dark blob on a
  small segment" failure, which the first count cannot see (a blob that fills its segment is its
  segment's median).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from ..io import instance_edges


def to_lab(image: np.ndarray) -> np.ndarray:
    """uint8 H×W×3 RGB → float32 CIELAB (L in 0..100)."""
    return cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)


def _segment_medians(lab: np.ndarray, ids: np.ndarray) -> dict[int, np.ndarray]:
    return {int(s): np.median(lab[ids == s], axis=0) for s in np.unique(ids)}


@dataclass
class ClassColours:
    """Per class, a few CIELAB prototypes (k-means) of its pixels in real photos, and the 95th
    percentile of a real pixel's distance to its nearest prototype: a colour farther than that is
    not one the class has in the photos."""

    prototypes: dict[int, np.ndarray]
    limit: dict[int, float]

    @classmethod
    def fit(cls, photos: Iterable[np.ndarray], label_maps: Iterable[np.ndarray], k: int = 8,
            per_class: int = 20000, seed: int = 0) -> ClassColours:
        rng = np.random.default_rng(seed)
        pixels: dict[int, list[np.ndarray]] = {}
        for photo, labels in zip(photos, label_maps, strict=True):
            lab = to_lab(photo)
            for c in np.unique(labels):
                pixels.setdefault(int(c), []).append(lab[labels == c])
        prototypes, limit = {}, {}
        for c, chunks in pixels.items():
            px = np.concatenate(chunks)
            if len(px) > per_class:
                px = px[rng.choice(len(px), per_class, replace=False)]
            kk = min(k, len(px))
            criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 30, 0.1)
            cv2.setRNGSeed(seed)
            _, _, centres = cv2.kmeans(px.astype(np.float32), kk, None, criteria, 2, cv2.KMEANS_PP_CENTERS)
            prototypes[c] = centres
            limit[c] = float(np.percentile(cls._nearest(px, centres), 95))
        return cls(prototypes, limit)

    @staticmethod
    def _nearest(colours: np.ndarray, centres: np.ndarray) -> np.ndarray:
        return np.linalg.norm(colours[:, None, :] - centres[None, :, :], axis=2).min(axis=1)

    def off_colour(self, colour: np.ndarray, cls_index: int) -> bool | None:
        """Whether a CIELAB colour is unlike class ``cls_index`` in real photos (None: class unseen)."""
        if cls_index not in self.prototypes:
            return None
        return bool(self._nearest(colour[None], self.prototypes[cls_index])[0] > self.limit[cls_index])


def speckle_scores(image: np.ndarray, labels: np.ndarray, ids: np.ndarray, colours: ClassColours | None = None,
                   *, delta_e: float = 30.0, max_cluster: int = 16, small_area: int = 16) -> dict[str, float]:
    """``speckle_per_10k`` and ``small_offcolour`` (module docstring) of ``image`` generated from the
    map ``labels`` (classes) / ``ids`` (panoptic segment ids); ``small_offcolour`` is NaN without
    ``colours`` or small segments. Also ``small_segments``: how many were judged."""
    lab = to_lab(image)
    ids = np.asarray(ids)
    labels = np.asarray(labels)
    medians = _segment_medians(lab, ids)
    centre = np.zeros_like(lab)
    for s, m in medians.items():
        centre[ids == s] = m
    far = np.linalg.norm(lab - centre, axis=2) > delta_e
    interior = ~cv2.dilate((instance_edges(ids) > 0).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    candidates = far & interior
    n, comp, stats, _ = cv2.connectedComponentsWithStats(candidates.astype(np.uint8), connectivity=8)
    clusters = int(np.sum(stats[1:, cv2.CC_STAT_AREA] <= max_cluster)) if n > 1 else 0
    out = {"speckle_per_10k": 1e4 * clusters / max(1, int(interior.sum())),
           "small_offcolour": float("nan"), "small_segments": 0.0}
    if colours is not None:
        verdicts = []
        for s in medians:
            mask = ids == s
            if mask.sum() <= small_area:
                cls_index = int(np.bincount(labels[mask]).argmax())
                verdict = colours.off_colour(medians[s], cls_index)
                if verdict is not None:
                    verdicts.append(verdict)
        if verdicts:
            out["small_offcolour"] = float(np.mean(verdicts))
            out["small_segments"] = float(len(verdicts))
    return out


__all__ = ["ClassColours", "speckle_scores", "to_lab"]
