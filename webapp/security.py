"""Response headers every page and API answer carries, and the proxy in front of the app.

The dashboard runs no inline script or style (static/app.js and htmx only, htmx's own style injection
turned off in base.html), so the Content-Security-Policy can forbid both outright.
"""
from __future__ import annotations

from flask import Flask, Response, request
from werkzeug.middleware.proxy_fix import ProxyFix

PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'")
# JSON and other non-HTML answers load nothing at all.
OTHER_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
HSTS = "max-age=31536000; includeSubDomains"
_DEFAULTS = (("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"), ("Referrer-Policy", "same-origin"),
             ("Cross-Origin-Opener-Policy", "same-origin"),
             ("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()"))


def init_app(app: Flask) -> None:
    """Trust X-Forwarded-* only from the configured number of proxies, and add the security headers."""
    proxies = app.config.get("PROXY_FIX", 0)
    if proxies:
        # Heroku's router appends the client's address to X-Forwarded-For and sets X-Forwarded-Proto;
        # without a proxy, a client could claim any address (and dodge per-IP rate limits) with them.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)
    app.after_request(_security_headers)


def _security_headers(response: Response) -> Response:
    headers = response.headers
    defaults = [("Content-Security-Policy", PAGE_CSP if response.mimetype == "text/html" else OTHER_CSP), *_DEFAULTS]
    if request.is_secure:
        defaults.append(("Strict-Transport-Security", HSTS))
    # One pass over what the view set, then appends: each setdefault would scan the whole list again.
    present = {name.lower() for name in headers.keys()}
    for name, value in defaults:
        if name.lower() not in present:
            headers.add(name, value)
    return response
