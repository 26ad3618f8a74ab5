"""``borderwatch bench console``: the web console's speed in a real browser.

Shared with the browser tests: Debian's Chromium driven by Playwright (never a downloaded
browser) and a guard that lets the page reach the service on loopback and nothing else.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from borderwatch.errors import BorderwatchError

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright, Route

#: Chromium switches: no sandbox (root in containers), software rendering, and none of the
#: browser's own network traffic (updates, sync, safe browsing).
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class ConsoleBenchError(BorderwatchError):
    """The console bench could not run (no browser, the service did not start)."""


def chromium_path() -> str | None:
    """The system Chromium (``chromium`` or ``chromium-browser`` on PATH), or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def launch_chromium(playwright: Playwright) -> Browser:
    """Headless system Chromium with :data:`CHROMIUM_ARGS`."""
    path = chromium_path()
    if path is None:
        raise ConsoleBenchError("no chromium binary on PATH (Debian package chromium)")
    return playwright.chromium.launch(executable_path=path, args=list(CHROMIUM_ARGS))


def is_loopback(url: str) -> bool:
    """True for URLs the page may load: loopback hosts, and data:/blob: URLs."""
    parts = urlsplit(url)
    if parts.scheme in {"data", "blob"}:
        return True
    return parts.hostname in LOOPBACK_HOSTS


@dataclass
class LoopbackGuard:
    """A route handler: requests to loopback go on, every other request is aborted and kept in
    :attr:`refused` (``context.route("**/*", guard)``)."""

    refused: list[str] = field(default_factory=list)

    def __call__(self, route: Route) -> None:
        url = route.request.url
        if is_loopback(url):
            route.continue_()
        else:
            self.refused.append(url)
            route.abort("blockedbyclient")
