"""Images per second of our MATLAB bicubic and PSNR/SSIM on BSD100 (CPU), beside the alternatives.

Alternatives a user would pick: a straightforward NumPy port of MATLAB ``imresize`` (loops over output
rows, as BasicSR's and most ports do), Pillow's bicubic (fast but not MATLAB's: the PSNR column shows
how far off), and scikit-image's SSIM/PSNR on the same Y channel.

    python benchmarks/resize_metrics.py [--images N] [--threads T]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sr_models.datasets import find_dataset  # noqa: E402
from sr_models.metrics import psnr_ssim_y, psnr_y, to_y  # noqa: E402
from sr_models.resize import imresize  # noqa: E402
from tests.support import matlab_numpy  # noqa: E402


def timed(fn, items, repeats):
    """Best-of-``repeats`` seconds per item, and the outputs of the last run."""
    best = float("inf")
    outputs = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        outputs = [fn(x) for x in items]
        best = min(best, time.perf_counter() - t0)
    return best / len(items), outputs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--images", type=int, default=100)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--datasets-root", default=os.environ.get("SR_DATASETS_ROOT", str(REPO.parent / "shared" / "datasets")))
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    pairs = [pair.load() for pair in list(find_dataset("BSD100", args.datasets_root))[: args.images]]
    hrs = [hr for hr, _ in pairs]
    lrs = [lr for _, lr in pairs]
    lrs_np = [lr.permute(1, 2, 0).numpy() for lr in lrs]

    rows = []
    # -- bicubic x4 ----------------------------------------------------------------------------
    imresize(lrs[0], 4)  # warm the weight cache as a long-running worker would have it
    t_ours, sr_ours = timed(lambda lr: imresize(lr, 4), lrs, args.repeats)
    t_np, sr_np = timed(lambda a: matlab_numpy.imresize(a, 4), lrs_np, 1)
    t_pil, sr_pil = timed(
        lambda a: np.asarray(Image.fromarray(a).resize((a.shape[1] * 4, a.shape[0] * 4), Image.BICUBIC)), lrs_np,
        args.repeats,
    )
    identical = np.mean([np.array_equal(o.permute(1, 2, 0).numpy(), n) for o, n in zip(sr_ours, sr_np)])

    def mean_psnr(srs):
        return statistics.fmean(psnr_y(sr, hr).item() for sr, hr in zip(srs, hrs))

    pil_t = [torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))) for a in sr_pil]
    rows.append(("bicubic x4", "ours (PyTorch, MATLAB-exact)", 1 / t_ours, f"{mean_psnr(sr_ours):.4f}", f"{identical:.0%} of images identical to the NumPy port"))
    rows.append(("bicubic x4", "NumPy port of imresize", 1 / t_np, f"{mean_psnr([torch.from_numpy(a.transpose(2, 0, 1).copy()) for a in sr_np]):.4f}", "reference"))
    rows.append(("bicubic x4", "Pillow BICUBIC", 1 / t_pil, f"{mean_psnr(pil_t):.4f}", "not MATLAB's kernel/antialias"))

    # -- metrics -------------------------------------------------------------------------------
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    t_ours_m, ours_m = timed(lambda i: tuple(v.item() for v in psnr_ssim_y(sr_ours[i], hrs[i])),
                             range(len(hrs)), args.repeats)

    def skimage_metrics(i):
        y_sr = to_y(sr_ours[i])[4:-4, 4:-4].numpy()
        y_hr = to_y(hrs[i])[4:-4, 4:-4].numpy()
        return (
            peak_signal_noise_ratio(y_hr, y_sr, data_range=255),
            structural_similarity(y_sr, y_hr, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255),
        )

    t_sk, sk_m = timed(skimage_metrics, range(len(hrs)), args.repeats)
    max_ssim_diff = max(abs(a[1] - b[1]) for a, b in zip(ours_m, sk_m))
    rows.append(("PSNR-Y + SSIM-Y", "ours (psnr_ssim_y)", 1 / t_ours_m, f"{statistics.fmean(m[0] for m in ours_m):.4f}",
                 f"SSIM {statistics.fmean(m[1] for m in ours_m):.4f}"))
    rows.append(("PSNR-Y + SSIM-Y", "scikit-image (same Y)", 1 / t_sk, f"{statistics.fmean(m[0] for m in sk_m):.4f}",
                 f"SSIM {statistics.fmean(m[1] for m in sk_m):.4f}; max |diff| {max_ssim_diff:.1e}"))

    print(f"BSD100, {len(hrs)} images, x4; torch threads {torch.get_num_threads()}; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    print("| task | implementation | images/s | mean PSNR-Y (dB) | note |")
    print("|---|---|---:|---:|---|")
    for task, impl, ips, psnr, note in rows:
        print(f"| {task} | {impl} | {ips:.1f} | {psnr} | {note} |")


if __name__ == "__main__":
    main()
