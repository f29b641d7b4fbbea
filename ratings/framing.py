"""Which pages a crowd platform may frame, and where their forms may post.

Every page forbids framing and posts only to the site (``SR_CONTENT_SECURITY_POLICY``, set by
:mod:`ratings.middleware`, and Django's X-Frame-Options). MTurk shows an ExternalQuestion inside an
iframe of its own site, so the pages of an MTurk study (arrival, the rater's pages, the exit) let
MTurk's sites frame them, and the exit page may post to the MTurk submit address it names; every
other page keeps the strict policy.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings

from .crowd import CrowdConfig

__all__ = ["MTURK_FRAME_ANCESTORS", "allow_platform"]

MTURK_FRAME_ANCESTORS = "https://*.mturk.com"


def _policy(frame_ancestors: str, form_action: str) -> str:
    """The site's policy with these two directives replaced (added when absent)."""
    directives = [d.strip() for d in settings.SR_CONTENT_SECURITY_POLICY.split(";") if d.strip()]
    kept = [d for d in directives if d.split()[0] not in ("frame-ancestors", "form-action")]
    return "; ".join([*kept, f"frame-ancestors {frame_ancestors}", f"form-action {form_action}"])


def allow_platform(response, crowd: CrowdConfig | None, post_to: str = ""):
    """Let MTurk frame ``response`` (a page of an MTurk study), posting also to ``post_to``'s origin."""
    if crowd is None or crowd.platform != "mturk":
        return response
    form_action = "'self'"
    if post_to:
        parts = urlsplit(post_to)
        form_action += f" {parts.scheme}://{parts.netloc}"
    response.headers["Content-Security-Policy"] = _policy(MTURK_FRAME_ANCESTORS, form_action)
    response.xframe_options_exempt = True
    return response
