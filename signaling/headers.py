"""The HTTP headers every response carries: what the browser may do with the page.

The page loads only its own files (no inline script or style: ``index.html`` links
``app.js`` and ``style.css``), talks only to its own server, may not be framed (no
clickjacking of the call buttons), leaks no URL to others, and asks only for the
camera, microphone and screen of its own origin.
"""

from __future__ import annotations

from typing import Final

SERVER_NAME: Final = "signaling-server"

CONTENT_SECURITY_POLICY: Final = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        # Chromium matches ws:/wss: of the page's own host with 'self' (CSP level 3).
        "connect-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob: mediastream:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
PERMISSIONS_POLICY: Final = "camera=(self), microphone=(self), display-capture=(self)"
# A year; without includeSubDomains, the server may share its domain with others.
HSTS: Final = "max-age=31536000"


def security_headers(tls: bool) -> dict[str, str]:
    headers = {
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Permissions-Policy": PERMISSIONS_POLICY,
        # Versions tell an attacker which advisories to try; the name is enough.
        "Server": SERVER_NAME,
    }
    if tls:
        headers["Strict-Transport-Security"] = HSTS
    return headers
