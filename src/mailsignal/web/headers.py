"""ASGI middleware: security headers on every response of the API and its pages.

Every response gets `X-Content-Type-Options: nosniff` (a JSON body is never run as a
script), `Referrer-Policy: no-referrer`, and `X-Frame-Options: DENY` with its CSP twin
`frame-ancestors 'none'` (no page of ours inside someone else's frame). HTML gets a
strict Content-Security-Policy: its own origin only, no inline script, no plugins, no
`<base>`; anything else gets `default-src 'none'`, the policy for a body that is data.
A header the app set itself wins.

The one difference is the API explorer at `/api/v1/docs`: Swagger UI (vendored under
/static/vendor, issue 12) draws its icons from `data:` URLs in its stylesheet, so that
page may also load `data:` images; its scripts are files of ours like every page's.

The tracking routes never pass through here (track.py answers them before the
framework); its HTML pages carry `HTML_PAGE` below, pre-built like the rest of its
answers, and the pixel stays as lean as it was.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

Headers = list[tuple[bytes, bytes]]

COMMON: Headers = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
HTML_CSP = (
    b"default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    b"frame-ancestors 'none'"
)
DATA_CSP = b"default-src 'none'; frame-ancestors 'none'"
# The API explorer (see the module docstring).
DOCS_PATH = "/api/v1/docs"
DOCS_CSP = HTML_CSP + b"; img-src 'self' data:"
# The tracker's static pages (expired link, honeypot, gone file): no script, style or image.
HTML_PAGE: Headers = [
    *COMMON,
    (b"content-security-policy", b"default-src 'none'; base-uri 'none'; frame-ancestors 'none'"),
]
_CSP = b"content-security-policy"


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = scope["path"] == DOCS_PATH

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _value in headers}
                headers += [h for h in COMMON if h[0] not in present]
                if _CSP not in present:
                    headers.append((_CSP, _policy(headers, docs)))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _policy(headers: Headers, docs: bool) -> bytes:
    html = any(
        name.lower() == b"content-type" and value.lower().startswith(b"text/html")
        for name, value in headers
    )
    if not html:
        return DATA_CSP
    return DOCS_CSP if docs else HTML_CSP
