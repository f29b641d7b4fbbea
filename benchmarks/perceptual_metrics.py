"""Seconds per BSD100 image of DISTS and NIQE beside LPIPS-VGG (CPU), at 1 and 2 threads.

Each metric scores the 4x MATLAB-bicubic reconstruction of BSD100 images (480x320 or 320x480) against
the HR with the 4-pixel border removed, as ``evaluate_sr --metrics lpips,dists,niqe`` does. The
networks are loaded and run once before timing (loading is per process, not per image). NIQE is
NumPy/SciPy code on one core; torch's thread count does not change it.

    python benchmarks/perceptual_metrics.py [--images N] [--threads 1,2] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sr_models.datasets import find_dataset  # noqa: E402
from sr_models.dists import dists, load_dists  # noqa: E402
from sr_models.lpips import load_lpips, lpips  # noqa: E402
from sr_models.niqe import niqe  # noqa: E402
from sr_models.resize import imresize  # noqa: E402


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown CPU"
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    return f"{fields.get('Model name', '?').strip()}, {fields.get('CPU(s)', '?').strip()} CPU(s)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--images", type=int, default=10)
    p.add_argument("--threads", default="1,2", help="comma-separated torch thread counts")
    p.add_argument("--device", default="cpu")
    p.add_argument("--datasets-root", default=os.environ.get("SR_DATASETS_ROOT", str(REPO.parent / "shared" / "datasets")))
    args = p.parse_args()

    pairs = find_dataset("BSD100", args.datasets_root).pairs[: args.images]
    images = []
    for pair in pairs:
        hr, lr = pair.load()
        images.append((imresize(lr, 4, method="bicubic"), hr))
    load_lpips(args.device), load_dists(args.device)
    metrics = {
        "LPIPS-VGG": lambda sr, hr: float(lpips(sr, hr, 4, device=args.device)),
        "DISTS": lambda sr, hr: float(dists(sr, hr, 4, device=args.device)),
        "NIQE": lambda sr, hr: niqe(sr, 4),
    }
    for fn in metrics.values():
        fn(*images[0])  # warm-up: first-call allocations, lazy imports
    print(f"machine: {cpu_model()}; torch {torch.__version__}; Python {platform.python_version()}; "
          f"load average at start {os.getloadavg()[0]:.2f}; {len(images)} BSD100 images, bicubic x4 vs HR, border 4")
    print()
    print("| metric | threads | s/image (mean) | min | max | mean value |")
    print("|---|---:|---:|---:|---:|---:|")
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        for name, fn in metrics.items():
            seconds, values = [], []
            for sr, hr in images:
                t0 = time.perf_counter()
                values.append(fn(sr, hr))
                seconds.append(time.perf_counter() - t0)
            print(f"| {name} | {threads} | {statistics.fmean(seconds):.3f} | {min(seconds):.3f} | {max(seconds):.3f} "
                  f"| {statistics.fmean(values):.4f} |", flush=True)
    print(f"\nload average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
