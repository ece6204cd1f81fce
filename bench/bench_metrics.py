"""Cost of the metrics on this machine (issue 7, items 3–4).

Times (median after warm-up): the MobileNetV2 / VGG19 feature trunks at 224² (pool features, as FD
uses them) and at 256² (all default layers, as a perceptual loss uses them), float32 and bfloat16
autocast; the Fréchet distance in 1280 dimensions through the full D×D eigendecomposition and the
exact low-rank path (N < D); SSIM/PSNR of a 256² pair; the small segmenter at 128². Achieved GFLOP/s
are shown beside a float32 sgemm rate measured in the same run. Pretrained trunks are used when
their files are in weights/, else random-initialised ones (same cost).

    i2i bench metrics [--threads 2] [--repeats 5] [--quick]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import count_flops, print_table, sgemm_gflops, time_median, write_results
from engine.metrics.distribution import FeatureStats, frechet_distance, frechet_distance_stats
from engine.metrics.features import backbone_path, build_features
from engine.metrics.image import psnr, ssim
from engine.metrics.segmenter import SmallUNet


def _features(name: str):
    path = backbone_path(name)
    return build_features(name, path=path) if path.exists() else build_features(name, random_init=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="fewer repeats, skip VGG19 and bfloat16")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    repeats = 2 if args.quick else args.repeats
    ceiling = sgemm_gflops()
    rows: list[dict[str, Any]] = []

    def add(what: str, fn, flops: int | None = None, per: int = 1) -> None:
        med, best = time_median(fn, repeats=repeats)
        rows.append({"what": what, "ms": med * 1e3, "min_ms": best * 1e3, "per_item_ms": med * 1e3 / per,
                     "GFLOP/s": (flops / med / 1e9) if flops else None})

    backbones = ["mobilenet_v2"] if args.quick else ["mobilenet_v2", "vgg19"]
    for name in backbones:
        f = _features(name)
        tag = f"{f.metric_name}"
        x224 = torch.rand(8, 3, 224, 224) * 2 - 1
        x256 = torch.rand(1, 3, 256, 256) * 2 - 1
        with torch.inference_mode():
            def pooled(f=f, x=x224) -> None:
                f.pooled(x, size=None)

            add(f"{tag} pooled 8×224²", pooled, count_flops(pooled), per=8)
            add(f"{tag} layers 1×256²", lambda f=f, x=x256: f(x), count_flops(lambda f=f, x=x256: f(x)))
            if not args.quick:
                def bf16(pooled=pooled) -> None:
                    with torch.autocast("cpu", dtype=torch.bfloat16):
                        pooled()
                add(f"{tag} pooled 8×224² bf16", bf16, count_flops(pooled), per=8)

    rng = np.random.default_rng(0)
    a, b = FeatureStats(1280), FeatureStats(1280)
    a.update(rng.normal(size=(200, 1280)))
    b.update(rng.normal(0.1, 1.1, size=(200, 1280)))
    full = frechet_distance(a.mean, a.cov, b.mean, b.cov)
    low = frechet_distance_stats(a, b)
    add("FD 1280-d full eigh (N=200)", lambda: frechet_distance(a.mean, a.cov, b.mean, b.cov))
    add("FD 1280-d low-rank (N=200)", lambda: frechet_distance_stats(a, b))

    img1 = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    img2 = np.clip(img1 + rng.normal(0, 10, img1.shape), 0, 255).astype(np.uint8)
    add("SSIM 256² RGB", lambda: ssim(img1, img2))
    add("PSNR 256² RGB", lambda: psnr(img1, img2))

    seg = SmallUNet(16, width=16, depth=3).eval()
    x = torch.rand(8, 3, 128, 128) * 2 - 1
    with torch.inference_mode():
        add("segmenter 8×128²", lambda: seg(x), count_flops(lambda: seg(x)), per=8)

    print(f"float32 sgemm ceiling: {ceiling:.0f} GFLOP/s, threads {args.threads}")
    print_table(rows, ["what", "ms", "min_ms", "per_item_ms", "GFLOP/s"])
    print(f"FD full vs low-rank agree: {full:.6f} vs {low:.6f}")
    path = write_results("metrics", {"sgemm_gflops": ceiling, "rows": rows,
                                     "fd_full": full, "fd_low_rank": low})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
