"""``manage.py score_images DIR --reference REF_DIR``: score any folder of images (another paper's
outputs, say) against same-named references: PSNR-Y, SSIM-Y, LPIPS, DISTS, NIQE."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from sr_models.dists import DISTSWeightsError
from sr_models.evaluation import METRIC_COLUMNS, METRICS, ScoringError, parse_metrics, score_folder, write_scores_csv
from sr_models.images import ImageError
from sr_models.niqe import NIQEParamsError
from sr_models.vgg import VGGWeightsError

from ._scores import write_table


class Command(BaseCommand):
    help = (
        "Score every image (PNG, BMP, TIFF, JPEG) of DIR against the image of the same name in --reference "
        "(names as reports give them: img_001_SRF_4_SRGAN.png meets img_001_SRF_4_HR.png). Without "
        "--reference only NIQE, which needs none. The CSV has the header image, then the metrics in the "
        "order psnr_y,ssim_y,lpips,dists,niqe."
    )

    def add_arguments(self, parser):
        parser.add_argument("dir", help="folder of the images to score")
        parser.add_argument("--reference", help="folder of the reference (HR) images")
        parser.add_argument("--metrics", default=None,
                            help=f"comma-separated, from {','.join(METRICS)} (default: all; niqe without --reference)")
        parser.add_argument("--border", type=int, default=4, help="pixels removed at each side (default 4, for 4x)")
        parser.add_argument("--csv", help="write per-image scores to this CSV")
        parser.add_argument("--device", default=settings.SR_DEVICE, help="auto (CUDA if present), cpu or cuda")

    def handle(self, *args, **opts):
        try:
            default = METRICS if opts["reference"] else ("niqe",)
            metrics = parse_metrics(opts["metrics"]) if opts["metrics"] else default
            bar = lambda names: tqdm(names, desc=f"scoring {opts['dir']}", unit="img",  # noqa: E731
                                     disable=opts["verbosity"] == 0, file=self.stderr._out)
            scores = score_folder(opts["dir"], opts["reference"], metrics, border=opts["border"],
                                  device=opts["device"], progress=bar)
        except (ScoringError, ImageError, VGGWeightsError, DISTSWeightsError, NIQEParamsError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        columns = [METRIC_COLUMNS[m] for m in metrics]
        write_table(self.stdout, scores, columns)
        self.stdout.write(f"{len(scores)} images in {opts['dir']} scored"
                          + (f" against {opts['reference']}" if opts["reference"] else "") + f" (border {opts['border']})")
        if opts["csv"]:
            path = write_scores_csv(scores, opts["csv"], columns=columns)
            self.stdout.write(f"wrote {path}")
