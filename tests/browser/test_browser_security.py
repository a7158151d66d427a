"""issue 16 in a real Chromium: the page under its strict CSP, and a foreign web page
that tries to use the user's signaling server."""

from __future__ import annotations

import pytest
from aiohttp import web
from playwright.async_api import Browser, Page

from tests.helpers.browser_support import login_page, remote_video_playing
from tests.helpers.support import SignalingServer, free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Every CSP violation the page would commit, recorded before its own scripts run.
_RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener('securitypolicyviolation', (event) => {
  window.__violations.push(event.violatedDirective + ' ' + event.blockedURI);
});
"""

_EVIL_PAGE = """<!doctype html><html><body><h1>cute cats</h1>
<iframe id="framed" src="%(server)s/"></iframe>
<script>
window.socketResult = new Promise((resolve) => {
  const ws = new WebSocket('%(ws)s');
  ws.onopen = () => {
    ws.send(JSON.stringify({type: 'login', username: 'evil'}));
    ws.onmessage = (event) => resolve('open: ' + event.data);
  };
  ws.onerror = () => resolve('refused');
});
</script></body></html>"""


async def test_the_page_calls_under_its_csp_without_a_violation(
    browser: Browser, signaling_server: SignalingServer
) -> None:
    url = signaling_server.http_url
    errors: list[str] = []
    context = await browser.new_context()
    await context.add_init_script(_RECORD_VIOLATIONS)
    alice = await login_page(context, url, "alice", errors)
    bob_context = await browser.new_context()
    await bob_context.add_init_script(_RECORD_VIOLATIONS)
    bob = await login_page(bob_context, url, "bob", errors)
    await alice.fill("#callee", "bob")
    await alice.click("#call")
    await remote_video_playing(alice)
    await remote_video_playing(bob)
    for page in (alice, bob):
        assert await page.evaluate("window.__violations") == []
    assert errors == []


async def test_a_foreign_page_cannot_use_the_server_or_frame_the_page(
    browser: Browser, signaling_server: SignalingServer
) -> None:
    # Another site on the same machine (a LAN or localhost page: Chromium's own
    # local-network protection does not stand in the way there).
    evil = _EVIL_PAGE % {"server": signaling_server.http_url, "ws": signaling_server.ws_url}

    async def serve_evil(request: web.Request) -> web.Response:
        return web.Response(text=evil, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", serve_evil)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        context = await browser.new_context()
        page = await context.new_page()
        await page.goto(f"http://localhost:{port}/")
        assert await page.evaluate("window.socketResult") == "refused"
        await _assert_not_framed(page)
    finally:
        await runner.cleanup()


async def _assert_not_framed(page: Page) -> None:
    # frame-ancestors 'none': the call page never loads inside somebody else's page.
    framed = [frame for frame in page.frames if frame != page.main_frame]
    assert framed
    for frame in framed:
        await frame.wait_for_load_state("load")
        assert await frame.evaluate("() => window.webcamPeer === undefined")
