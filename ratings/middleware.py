"""A Content-Security-Policy on every response.

Our own few lines rather than django-csp: one fixed policy (settings.SR_CONTENT_SECURITY_POLICY), no
nonces (the pages have no inline scripts or styles), and a view that serves other content (the
dashboard's report) sets its own header, which is left alone.
"""

from __future__ import annotations

from django.conf import settings

__all__ = ["ContentSecurityPolicyMiddleware"]


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", settings.SR_CONTENT_SECURITY_POLICY)
        return response
