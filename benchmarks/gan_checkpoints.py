"""Score generator files the way docs/training_recipes.md compares GAN recipes against steps.

For each weights file (shipped ``.safetensors``, a run's snapshots, or a training checkpoint ``.pt``),
on Set5 and on the first ``--bsd`` BSD100 images (all 100 with ``--bsd 100``), border 4 as in every
SR table:

* PSNR-Y (dB) and the mean colour shift SR - HR per RGB channel (grey levels; the paper's loss from
  SRResNet-MSE drifts it by tens of levels within a few hundred steps);
* the high-frequency ratio SR / HR (mean squared Laplacian of Y; blur < 1, HR-like 1, artefacts >> 1);
* the grid ratio SR / HR (``sr_models.sharpness.grid_ratio``: the 4x4-periodic part of Y, the
  pattern a pixel-shuffle upsampler makes most easily; 1 = no more of it than the HR has);
* LPIPS-VGG, DISTS and NIQE on the BSD100 images (NIQE needs no reference; lower is more natural).

A run of ``sr_models.train`` keeps only ``last.pt``; to score a run against steps, keep its
generator every N steps (``--keep-every``) and pass the snapshot files here, e.g.::

    python benchmarks/gan_checkpoints.py sr_models/weights/srresnet-mse.safetensors \\
        sr_models/weights/srgan-vgg54.safetensors runs/srgan-vgg54/snapshots/*.safetensors --bsd 20
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sr_models.datasets import find_dataset  # noqa: E402
from sr_models.dists import dists  # noqa: E402
from sr_models.inference import load_generator, upscale  # noqa: E402
from sr_models.lpips import lpips  # noqa: E402
from sr_models.metrics import psnr_y  # noqa: E402
from sr_models.niqe import niqe  # noqa: E402
from sr_models.sharpness import grid_ratio, hf_energy_ratio  # noqa: E402

BORDER = 4


def score(generator, pairs, perceptual: bool) -> dict[str, float]:
    """Means over ``pairs`` of the measures above (the perceptual ones only when asked)."""
    rows = []
    with torch.no_grad():
        for hr, lr in pairs:
            sr = upscale(generator, lr).cpu()
            shift = (sr.float().mean((1, 2)) - hr.float().mean((1, 2))).tolist()
            row = {"psnr_y": float(psnr_y(sr, hr, BORDER)), "shift_r": shift[0], "shift_g": shift[1],
                   "shift_b": shift[2], "hf_ratio": float(hf_energy_ratio(sr, hr, BORDER)),
                   "grid_ratio": float(grid_ratio(sr, hr, border=BORDER))}
            if perceptual:
                row.update(lpips=float(lpips(sr, hr, BORDER)), dists=float(dists(sr, hr, BORDER)),
                           niqe=niqe(sr, BORDER))
            rows.append(row)
    return {key: math.fsum(r[key] for r in rows) / len(rows) for key in rows[0]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("weights", nargs="+", help="generator files: .safetensors or training checkpoints .pt")
    p.add_argument("--bsd", type=int, default=20, help="how many BSD100 images (in name order) to score")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--datasets-root",
                   default=os.environ.get("SR_DATASETS_ROOT", str(REPO.parent / "shared" / "datasets")))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    sets = {"Set5": list(find_dataset("Set5", args.datasets_root)),
            f"BSD100[:{args.bsd}]": list(find_dataset("BSD100", args.datasets_root))[:args.bsd]}
    images = {name: [pair.load() for pair in pairs] for name, pairs in sets.items()}
    print("| weights | set | PSNR-Y | colour shift R / G / B | HF ratio | grid ratio | LPIPS | DISTS | NIQE |")
    print("|---|---|---:|---|---:|---:|---:|---:|---:|")
    for path in args.weights:
        generator = load_generator(path)
        for i, (name, pairs) in enumerate(images.items()):
            s = score(generator, pairs, perceptual=i == 1)
            perceptual = (f"{s['lpips']:.4f} | {s['dists']:.4f} | {s['niqe']:.2f}" if "lpips" in s
                          else "- | - | -")
            print(f"| {Path(path).name} | {name} | {s['psnr_y']:.2f} | "
                  f"{s['shift_r']:+.1f} / {s['shift_g']:+.1f} / {s['shift_b']:+.1f} | {s['hf_ratio']:.3f} | {s['grid_ratio']:.2f} | "
                  f"{perceptual} |", flush=True)


if __name__ == "__main__":
    main()
