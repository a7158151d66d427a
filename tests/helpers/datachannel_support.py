"""Helpers for chat and file-transfer tests: the page's chat box and transfer rows as a
user sees them, test files with known hashes, and saving what the page offers."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Locator, Page, expect

from tests.helpers.browser_support import DEFAULT_TIMEOUT, login_page, wait_for_state
from tests.helpers.peer_support import random_file, sha256_of

MiB = 1024 * 1024
# A 100 MiB transfer on a loaded 2-core machine, both ends hashing in JavaScript or Python.
BIG_TRANSFER_TIMEOUT = 300.0

_CHAT_LINES_JS = """
() => Array.from(document.querySelectorAll('#chat-log li')).map((li) => ({
  from: li.dataset.from,
  kind: li.dataset.kind || '',
  text: li.querySelector('.text').textContent,
}))
"""


@dataclass(frozen=True)
class TestFile:
    path: Path
    size: int
    sha256: str


def make_file(path: Path, size: int) -> TestFile:
    """A file of ``size`` random bytes, and its SHA-256."""
    random_file(path, size)
    return TestFile(path, size, sha256_of(path))


async def chat_ready(page: Page, within: float = DEFAULT_TIMEOUT) -> None:
    """The chat box (and with it the file picker) is usable: the call's channel is open."""
    await expect(page.locator("#chat-input")).to_be_enabled(timeout=within * 1000)
    await expect(page.locator("#file-send")).to_be_enabled(timeout=within * 1000)


async def call_between_pages(
    browser: Browser,
    server_http_url: str,
    caller: str = "alice",
    callee: str = "bob",
    errors: list[str] | None = None,
) -> tuple[Page, Page]:
    """Two pages logged in, ``caller`` calls ``callee`` through the form; both chat boxes open."""
    first = await login_page(browser, server_http_url, caller, errors)
    second = await login_page(browser, server_http_url, callee, errors)
    await first.fill("#callee", callee)
    await first.click("#call")
    await wait_for_state(first, "in-call")
    await wait_for_state(second, "in-call")
    await chat_ready(first)
    await chat_ready(second)
    return first, second


async def say(page: Page, text: str) -> None:
    """Type a line into the chat box and press Send."""
    await page.fill("#chat-input", text)
    await page.click("#chat-send")


async def chat_lines(page: Page) -> list[dict[str, str]]:
    """Every line in the chat history: who (me/them/system), kind, text."""
    lines: list[dict[str, str]] = await page.evaluate(_CHAT_LINES_JS)
    return lines


async def wait_for_chat_line(page: Page, from_: str, text: str) -> None:
    await expect(
        page.locator(f"#chat-log li[data-from='{from_}'] .text").filter(has_text=text)
    ).to_have_count(1, timeout=DEFAULT_TIMEOUT * 1000)


async def send_file(page: Page, *paths: Path) -> None:
    """Pick ``paths`` with the file picker and press Send file: they go at once."""
    await page.set_input_files("#file-input", [str(path) for path in paths])
    await page.click("#file-send")


def transfer_row(page: Page, direction: str, name: str | None = None) -> Locator:
    """The newest transfer row going ``out`` or coming ``in`` (of the file ``name``)."""
    rows = page.locator(f"#transfers .transfer[data-direction='{direction}']")
    if name is not None:
        rows = rows.filter(has=page.locator(".name", has_text=name))
    return rows.first


async def wait_for_transfer(
    page: Page, direction: str, state: str, within: float = DEFAULT_TIMEOUT, name: str | None = None
) -> Locator:
    row = transfer_row(page, direction, name)
    await expect(row).to_have_attribute("data-state", state, timeout=within * 1000)
    return row


async def wait_for_progress(row: Locator, within: float = DEFAULT_TIMEOUT) -> int:
    """Wait until a row's progress bar has moved past 0 and is short of its end."""
    handle = await row.element_handle(timeout=within * 1000)
    assert handle is not None
    value: Any = await row.page.wait_for_function(
        """(li) => {
            const bar = li.querySelector('progress');
            return bar.value > 0 && bar.value < bar.max ? bar.value : false;
        }""",
        arg=handle,
        timeout=within * 1000,
        polling=20,
    )
    return int(await value.json_value())


async def save_download(page: Page, row: Locator, directory: Path) -> Path:
    """Click the row's download link as a user would; where the browser saved the file."""
    link = row.locator("a.download")
    async with page.expect_download() as download_info:
        await link.click()
    download = await download_info.value
    target = directory / download.suggested_filename
    await download.save_as(target)
    return target


_LIE_JS = """
async ([header, chunks, digest]) => {
    const channel = window.webcamPeer.pc.createDataChannel('file');
    channel.binaryType = 'arraybuffer';
    const replies = [];
    let replied = null;
    const firstReply = new Promise((resolve) => { replied = resolve; });
    channel.onmessage = (event) => { replies.push(JSON.parse(event.data)); replied(); };
    const closed = new Promise((resolve) => { channel.onclose = resolve; });
    await new Promise((resolve) => { channel.onopen = resolve; });
    channel.send(JSON.stringify({ type: 'file', ...header }));
    await firstReply;
    if (replies[0].type === 'accept') {
        for (const n of chunks) channel.send(new Uint8Array(n).fill(7));
        channel.send(JSON.stringify({ type: 'end', sha256: digest }));
    }
    await closed;
    return replies;
}
"""


async def send_lies(page: Page, header: dict[str, Any], chunks: list[int], lie: str) -> list[Any]:
    """A script in ``page`` plays a sender that speaks the wire format but lies: sends the
    ``header`` as given, then (if accepted) chunks of these sizes and an ``end`` whose
    hash is right unless ``lie`` is "hash". Returns every reply until the channel closes."""
    sent = bytes([7]) * sum(chunks)
    digest = "0" * 64 if lie == "hash" else hashlib.sha256(sent).hexdigest()
    replies: list[Any] = await page.evaluate(_LIE_JS, [header, chunks, digest])
    return replies
