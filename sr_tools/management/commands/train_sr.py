"""``manage.py train_sr VARIANT ...``: ``python -m sr_models.train`` with defaults from the settings."""

from __future__ import annotations

import argparse

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from sr_models import train


class Command(BaseCommand):
    help = "Train srresnet-mse, srresnet-vgg22, srgan-mse, srgan-vgg22 or srgan-vgg54; resumes a killed run."

    def add_arguments(self, parser):
        train.add_arguments(parser)

    def handle(self, *args, **opts):
        try:
            train.run(argparse.Namespace(**opts), datasets_root=str(settings.SR_DATASETS_ROOT),
                      out_root=str(settings.SR_RUNS_DIR), backbone=settings.SR_VGG_BACKBONE,
                      weights_dir=settings.SR_WEIGHTS_DIR, log=self.stdout.write, warn=self.stderr.write)
        except train.TRAINING_ERRORS as exc:
            raise CommandError(str(exc)) from None
