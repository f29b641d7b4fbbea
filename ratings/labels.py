"""Rater labels (``r001``, ``w0001``): the next free number of a prefix within a study.

Its own module so that both the invitation side (``studies``) and open enrolment (``enrolment``)
import it at the top, without either importing the other.
"""

from __future__ import annotations

import re

from .models import Study

__all__ = ["next_label_number"]


def next_label_number(study: Study, prefix: str) -> int:
    """1 + the highest number of the study's labels ``<prefix><digits>`` (0 when none).

    A count of raters would reuse a label after a deletion and hit the unique label constraint.
    The caller holds the study's row lock, so two callers never get the same number.
    """
    pattern = re.compile(rf"{re.escape(prefix)}(\d+)")
    numbers = [int(m.group(1)) for label in study.raters.filter(label__startswith=prefix).values_list("label", flat=True)
               if (m := pattern.fullmatch(label))]
    return max(numbers, default=0) + 1
