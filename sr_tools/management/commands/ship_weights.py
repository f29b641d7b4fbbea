"""``manage.py ship_weights VARIANT --from CHECKPOINT``: install trained weights with a model card."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from sr_models.inference import WeightsError
from sr_models.model_card import ship_weights
from sr_models.variants import VARIANTS


class Command(BaseCommand):
    help = ("Copy a trained generator to SR_WEIGHTS_DIR/<variant>.safetensors, evaluate it on Set5, Set14 "
            "and BSD100 (PSNR/SSIM/LPIPS/high-frequency ratio) and write its model card.")

    def add_arguments(self, parser):
        parser.add_argument("variant", choices=sorted(VARIANTS))
        parser.add_argument("--from", dest="source", required=True,
                            help="generator.safetensors or last.pt of a training run")
        parser.add_argument("--run-dir", help="the training run folder (default: the source's folder)")
        parser.add_argument("--hardware", help="what it was trained on, for the model card")
        parser.add_argument("--notes", default="")
        parser.add_argument("--device", default=settings.SR_DEVICE)

    def handle(self, *args, **opts):
        source = Path(opts["source"])
        run_dir = Path(opts["run_dir"]) if opts["run_dir"] else source.parent
        try:
            target, card = ship_weights(
                opts["variant"], source, Path(settings.SR_WEIGHTS_DIR), Path(settings.SR_DATASETS_ROOT),
                run_dir=run_dir if (run_dir / "config.json").exists() else None, backbone=settings.SR_VGG_BACKBONE,
                device=opts["device"], hardware=opts["hardware"], notes=opts["notes"], progress=self.stdout.write,
            )
        except WeightsError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"shipped {target} (sha256 {card['sha256'][:16]}...) with {target.with_suffix('.json').name}")
