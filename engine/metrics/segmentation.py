"""Mask faithfulness: confusion matrix and mean IoU between predicted and reference label maps."""
from __future__ import annotations

import numpy as np

from ..requests.base import InputError


class ConfusionMatrix:
    """Accumulates a num_classes² confusion matrix (rows = reference, columns = prediction);
    reference pixels equal to ``ignore_index`` (or outside 0..num_classes-1) are not counted."""

    def __init__(self, num_classes: int, ignore_index: int | None = None) -> None:
        if num_classes < 1:
            raise InputError(f"num_classes must be positive, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = np.zeros((num_classes, num_classes), np.int64)

    def update(self, reference: np.ndarray, prediction: np.ndarray) -> None:
        ref = np.asarray(reference).astype(np.int64).ravel()
        pred = np.asarray(prediction).astype(np.int64).ravel()
        if ref.shape != pred.shape:
            raise InputError(f"label maps differ in size: {np.shape(reference)} vs {np.shape(prediction)}")
        keep = (ref >= 0) & (ref < self.num_classes)
        if self.ignore_index is not None:
            keep &= ref != self.ignore_index
        pred = np.clip(pred, 0, self.num_classes - 1)  # stray predictions count as wrong, not lost
        self.matrix += np.bincount(ref[keep] * self.num_classes + pred[keep],
                                   minlength=self.num_classes ** 2).reshape(self.num_classes, self.num_classes)

    def iou(self) -> np.ndarray:
        """Per-class IoU; NaN for classes absent from both reference and prediction."""
        tp = np.diag(self.matrix).astype(np.float64)
        union = self.matrix.sum(0) + self.matrix.sum(1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            out = tp / union
        out[union == 0] = np.nan
        if self.ignore_index is not None and 0 <= self.ignore_index < self.num_classes:
            out[self.ignore_index] = np.nan
        return out

    def miou(self) -> float:
        """Mean IoU over classes present in the reference or the prediction."""
        vals = self.iou()
        return float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")

    def pixel_accuracy(self) -> float:
        total = self.matrix.sum()
        return float(np.trace(self.matrix) / total) if total else float("nan")


def mean_iou(reference: np.ndarray, prediction: np.ndarray, num_classes: int,
             ignore_index: int | None = None) -> float:
    """mIoU of one pair of H×W label maps."""
    cm = ConfusionMatrix(num_classes, ignore_index)
    cm.update(reference, prediction)
    return cm.miou()
