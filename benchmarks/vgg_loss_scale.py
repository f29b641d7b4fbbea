"""How large the VGG content losses are next to the MSE loss: the measurement behind each backbone
layer's feature rescale (``sr_models.vgg.BACKBONES``).

Ledig et al. (CVPR 2017) rescale VGG feature maps by 1/12.75 "to obtain VGG losses of a scale that is
comparable to the MSE loss". How large features are depends on the backbone, the layer and the input
normalisation, so the constant does not carry over to another VGG. This script applies the paper's rule
to the backbones at hand: it runs a trained SRResNet-MSE (the generator every other variant starts
from) on random training crops and prints, per layer, the content loss at 1/12.75, its ratio to the
MSE loss of the same outputs, the rescale that would make the two equal, and the one we ship.

Usage::

    python benchmarks/vgg_loss_scale.py [--weights FILE] [--batches 8] [--threads T]
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

from sr_models.datasets import training_image_paths  # noqa: E402
from sr_models.inference import load_generator  # noqa: E402
from sr_models.losses import VGGContentLoss, mse_loss  # noqa: E402
from sr_models.training import CropSampler  # noqa: E402
from sr_models.variants import PAPER_VGG_RESCALE  # noqa: E402
from sr_models.vgg import BACKBONES, VGGWeightsError  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default=str(REPO / "sr_models" / "weights" / "srresnet-mse.safetensors"))
    p.add_argument("--batches", type=int, default=8, help="batches of 16 random 96x96 training crops")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--datasets-root",
                   default=os.environ.get("SR_DATASETS_ROOT", str(REPO.parent / "shared" / "datasets")))
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    generator = load_generator(args.weights)
    sampler = CropSampler(training_image_paths(args.datasets_root), 96, 4, seed=12345)
    batches = [sampler.batch(k, 16) for k in range(args.batches)]
    with torch.no_grad():
        outputs = [(generator(lr), hr) for lr, hr in batches]
        mse = sum(mse_loss(sr, hr).item() for sr, hr in outputs) / len(outputs)
        rows = []
        for backbone, layers in BACKBONES.items():
            for layer, spec in layers.items():
                try:
                    loss = VGGContentLoss(layer, backbone, rescale=PAPER_VGG_RESCALE)
                except VGGWeightsError:
                    rows.append((backbone, spec.name, "-", "-", "-", f"{spec.rescale:.4g}", "weights not on this machine"))
                    continue
                value = sum(loss(sr, hr).item() for sr, hr in outputs) / len(outputs)
                ratio = value / mse
                matching = PAPER_VGG_RESCALE / math.sqrt(ratio)
                rows.append((backbone, spec.name, f"{value:.5f}", f"{ratio:.2f}", f"{matching:.4f}",
                             f"{spec.rescale:.4g}", ""))
    print(f"Generator {Path(args.weights).name}; {args.batches} x 16 training crops (96x96); "
          f"MSE loss of its outputs (HR in [-1, 1]): {mse:.5f}")
    print()
    print("| backbone | layer | VGG loss at 1/12.75 | ratio to MSE | rescale matching MSE | shipped rescale | note |")
    print("|---|---|---:|---:|---:|---:|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
