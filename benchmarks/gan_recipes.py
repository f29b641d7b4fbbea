"""Short training runs of a variant from SRResNet-MSE with given loss weights, to compare recipes.

Prints, every ``--every`` steps, what a researcher would look at first: Set5 PSNR-Y, the mean colour
shift of SR against HR per RGB channel (grey levels; a healthy run stays within a few), the
high-frequency ratio SR/HR (mean squared Laplacian of Y; blur < 1, HR-like 1, artefacts >> 1), and the
mean losses and discriminator outputs over those steps. The runs behind the recipe table of
docs/training_recipes.md were made with it, e.g.::

    python benchmarks/gan_recipes.py srgan-vgg54 --steps 200 --adversarial-weight 1e-3 --low-frequency-weight 0 --vgg-rescale 0.0784
    python benchmarks/gan_recipes.py srgan-vgg54 --steps 200          # the variant's recipe

Batches are those of the training loop (seed 0); the learning rate is constant (``--lr``, the paper's
1e-4 by default), as in the first half of the paper's SRGAN schedule.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sr_models.datasets import find_dataset, training_image_paths  # noqa: E402
from sr_models.inference import upscale  # noqa: E402
from sr_models.metrics import psnr_y  # noqa: E402
from sr_models.sharpness import hf_energy_ratio  # noqa: E402
from sr_models.training import CropSampler, TrainConfig, Trainer  # noqa: E402
from sr_models.variants import VARIANTS  # noqa: E402

LOGGED = ("content", "adversarial", "low_frequency", "d_real", "d_fake")


def set5_summary(trainer: Trainer, pairs) -> str:
    trainer.generator.eval()
    psnrs, shifts, hf = [], [], []
    with torch.no_grad():
        for hr, lr in pairs:
            sr = upscale(trainer.generator, lr).cpu()
            psnrs.append(float(psnr_y(sr, hr)))
            shifts.append(sr.float().mean((1, 2)) - hr.float().mean((1, 2)))
            hf.append(float(hf_energy_ratio(sr, hr)))
    trainer.generator.train()
    r, g, b = torch.stack(shifts).mean(0).tolist()
    return (f"PSNR-Y {sum(psnrs) / len(psnrs):6.2f} dB | shift R {r:+5.1f} G {g:+5.1f} B {b:+5.1f} | "
            f"HF ratio {sum(hf) / len(hf):5.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("variant", choices=sorted(v for v in VARIANTS if v != "srresnet-mse"))
    p.add_argument("--init", default=str(REPO / "sr_models" / "weights" / "srresnet-mse.safetensors"))
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--every", type=int, default=50)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--adversarial-weight", type=float, default=None)
    p.add_argument("--low-frequency-weight", type=float, default=None)
    p.add_argument("--vgg-rescale", type=float, default=None)
    p.add_argument("--backbone", default="vgg16", choices=["vgg16", "vgg19"])
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--datasets-root",
                   default=os.environ.get("SR_DATASETS_ROOT", str(REPO.parent / "shared" / "datasets")))
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="sr-recipe-") as out:
        config = TrainConfig(
            variant=args.variant, out_dir=out, datasets_root=args.datasets_root, steps=args.steps, lr=args.lr,
            lr_decay_at=1.0, backbone=args.backbone, init_weights=args.init, validation_set=None,
            threads=args.threads, adversarial_weight=args.adversarial_weight,
            low_frequency_weight=args.low_frequency_weight, vgg_rescale=args.vgg_rescale,
        )
        trainer = Trainer(config, log=lambda message: None)
        trainer.initialise_generator(args.init)
        trainer.sampler = CropSampler(training_image_paths(args.datasets_root), config.crop_size, config.scale,
                                      config.seed)
        pairs = [pair.load() for pair in find_dataset("Set5", args.datasets_root)]
        print(f"{args.variant} from {Path(args.init).name}: {trainer.loss_weights}, lr {args.lr}", flush=True)
        print(f"step {0:5d} | {set5_summary(trainer, pairs)}", flush=True)
        means = dict.fromkeys(LOGGED, 0.0)
        for step in range(args.steps):
            row = trainer.train_step(*trainer.sampler.batch(step, config.batch_size))
            for key in LOGGED:
                means[key] += row[key] / args.every
            if (step + 1) % args.every == 0:
                losses = " ".join(f"{k} {v:.4g}" for k, v in means.items())
                print(f"step {step + 1:5d} | {set5_summary(trainer, pairs)} | {losses}", flush=True)
                means = dict.fromkeys(LOGGED, 0.0)


if __name__ == "__main__":
    main()
