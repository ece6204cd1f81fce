"""StarGAN v2 training throughput: seconds per iteration and images per second at several batch sizes.

Same run, same machine, one trainer: for each batch size a few warm-up iterations, then timed ones
(each synchronised), and the batch assembly alone (draws, gather, crop/flip on the device) so the data's
share shows. Writes ``bench/results/stargan2_train_<device>.json``.

    python bench/bench_stargan2_train.py --device cuda --batches 64,256
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.bench_speed import cuda_time, device_label
from bench.common import write_results
from engine.devices import CPU_FLAGS_OF_INTEREST, cpu_flags, cpu_name
from engine.train.stargan2 import StarGAN2Trainer, TrainOptions


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data/faces3")
    ap.add_argument("--config", default="faces64")
    ap.add_argument("--init", default="weights/stargan2_faces.safetensors")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batches", default="64,128,256")
    ap.add_argument("--warmup", type=int, default=12, help="untimed iterations per batch size (a GPU's first are slow)")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tag", default="", help="suffix of the results file")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    batches = [int(b) for b in args.batches.split(",")]
    opt = TrainOptions(data=Path(args.data), out=Path("/tmp/bench_stargan2_train"), config=args.config,
                       domains=["female", "male"], batch_size=batches[0], r1_every=16, device=args.device,
                       init=args.init)
    trainer = StarGAN2Trainer(opt)
    rows = []
    for b in batches:
        opt.batch_size = b
        for _ in range(args.warmup):
            trainer.train_step()
        # the median skips the lazy-R1 step that falls every 16th iteration
        step_s = statistics.median(cuda_time(trainer.train_step, args.rounds, device))  # synchronised calls
        fetch_s = statistics.median(cuda_time(trainer._fetch, args.rounds, device))
        rows.append({"batch": b, "ms_per_iteration": step_s * 1e3, "iterations_per_s": 1 / step_s,
                     "images_per_s": b / step_s, "batch_assembly_ms": fetch_s * 1e3})
        print(f"batch {b}: {step_s * 1e3:.1f} ms/iteration ({1 / step_s:.2f} it/s, {b / step_s:.0f} images/s), "
              f"batch assembly {fetch_s * 1e3:.1f} ms", flush=True)
        # written after each batch size: a run cut short by its time slot keeps the sizes it finished
        path = write_results(f"stargan2_train_{device.type}" + (f"_{args.tag}" if args.tag else ""), {
            "device": device_label(device), "cpu": cpu_name(),
            "cpu_flags": [f for f in CPU_FLAGS_OF_INTEREST if f in cpu_flags()], "torch": torch.__version__,
            "config": args.config, "threads": args.threads, "warmup": args.warmup, "rows": rows})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
