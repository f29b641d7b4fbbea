"""``manage.py train_sr VARIANT ...``: train a generator variant (same options as
``python -m sr_models.train``, with defaults from the settings)."""

from __future__ import annotations

import argparse

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from sr_models.datasets import DatasetError
from sr_models.train import add_arguments, config_from_args, default_init
from sr_models.training import train
from sr_models.vgg import VGGWeightsError


class Command(BaseCommand):
    help = "Train srresnet-mse, srresnet-vgg22, srgan-mse, srgan-vgg22 or srgan-vgg54; resumes a killed run."

    def add_arguments(self, parser):
        add_arguments(parser)

    def handle(self, *args, **opts):
        # The settings fill the defaults; everything else is sr_models.train's, as for python -m sr_models.train.
        config = config_from_args(argparse.Namespace(**opts), str(settings.SR_DATASETS_ROOT), str(settings.SR_RUNS_DIR),
                                  settings.SR_VGG_BACKBONE)  # fmt: skip
        note = default_init(config, settings.SR_WEIGHTS_DIR)
        if note:
            (self.stderr if note.startswith("warning") else self.stdout).write(note)
        try:
            result = train(config, progress=not opts["no_progress"], log=self.stdout.write)
        except (DatasetError, VGGWeightsError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"finished {config.variant} at step {result['step']}; run folder {result['out_dir']}")
