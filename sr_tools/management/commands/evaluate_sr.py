"""``manage.py evaluate_sr``: PSNR-Y / SSIM-Y (and LPIPS, DISTS, NIQE on request) of a method on a test
set, as published tables compute them."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from sr_models.datasets import DatasetError, find_dataset
from sr_models.dists import DISTSWeightsError
from sr_models.evaluation import METRICS, evaluate_dataset, mean_scores, parse_metrics, write_scores_csv
from sr_models.images import ImageError
from sr_models.inference import WeightsError
from sr_models.methods import get_upscaler
from sr_models.niqe import NIQEParamsError
from sr_models.vgg import VGGWeightsError

from ._scores import write_table


class Command(BaseCommand):
    help = (
        "Upscale every LR image of a dataset with METHOD and print per-image and mean PSNR/SSIM on Y "
        "(MATLAB rgb2ycbcr, border = scale), plus LPIPS, DISTS and NIQE when --metrics names them. "
        "The CSV has the header image,psnr_y,ssim_y, then the extra metrics in the order lpips,dists,niqe."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True, help="Set5, Set14, BSD100, or a folder of *_HR/*_LR pairs")
        parser.add_argument("--method", required=True, help="nearest, bicubic, or a network variant (srresnet-mse, ...)")
        parser.add_argument("--metrics", default="psnr,ssim",
                            help=f"comma-separated, from {','.join(METRICS)} (psnr and ssim are always computed)")
        parser.add_argument("--csv", help="write per-image scores to this CSV")
        parser.add_argument("--save-dir", help="write the SR images here as PNG, named like the HR files")
        parser.add_argument("--weights", help="evaluate this weights file or training checkpoint instead of the shipped one")
        parser.add_argument("--border", type=int, default=None, help="pixels removed at each side (default: the scale, 4)")
        parser.add_argument("--scale", type=int, default=4)
        parser.add_argument("--device", default=settings.SR_DEVICE, help="auto (CUDA if present), cpu or cuda")

    def handle(self, *args, **opts):
        try:
            metrics = parse_metrics(opts["metrics"])
            dataset = find_dataset(opts["dataset"], settings.SR_DATASETS_ROOT, opts["scale"])
            upscaler = get_upscaler(
                opts["method"],
                scale=opts["scale"],
                weights_dir=settings.SR_WEIGHTS_DIR,
                weights=opts["weights"],
                device=opts["device"],
            )
            bar = lambda pairs: tqdm(pairs, desc=f"{opts['method']} on {dataset.name}", unit="img",  # noqa: E731
                                     disable=opts["verbosity"] == 0, file=self.stderr._out)
            scores = evaluate_dataset(dataset, upscaler, border=opts["border"], save_dir=opts["save_dir"], progress=bar,
                                      metrics=metrics, device=opts["device"])
        except (DatasetError, ImageError, WeightsError, VGGWeightsError, DISTSWeightsError, NIQEParamsError,
                ValueError) as exc:
            raise CommandError(str(exc)) from None

        mean = write_table(self.stdout, scores)
        extra = "".join(f", {c.upper()} {v:.4f}" for c, v in mean.extra.items())
        self.stdout.write(f"{opts['method']} on {dataset.name} ({len(scores)} images): "
                          f"PSNR-Y {mean.psnr_y:.2f} dB, SSIM-Y {mean.ssim_y:.4f}{extra}")
        if opts["csv"]:
            path = write_scores_csv(scores, opts["csv"])
            self.stdout.write(f"wrote {path}")
        if opts["save_dir"]:
            self.stdout.write(f"wrote {len(scores)} SR images to {opts['save_dir']}")
