"""Checks of the ``scheme://host:port`` addresses in configuration files (brokers, TAK)."""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import SplitResult, urlsplit


def host_port_url(
    url: str, schemes: Collection[str], example: str, *, port_required: bool = False
) -> SplitResult:
    """``url`` split, when it is ``scheme://host[:port]`` with one of ``schemes`` and nothing
    after the port; otherwise ValueError naming the URL and, as a hint, ``example``."""
    parts = urlsplit(url)
    if parts.scheme not in schemes:
        names = [f"{s}://" for s in schemes]
        allowed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
        raise ValueError(f"{url!r}: the scheme must be {allowed}")
    if not parts.hostname:
        raise ValueError(f"{url!r}: a host is needed, e.g. {example}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"{url!r}: only {parts.scheme}://host:port, without a path")
    try:
        port = parts.port  # parsed lazily: this is where a bad port shows
    except ValueError as exc:
        raise ValueError(f"{url!r}: {exc}") from None
    if port_required and port is None:
        raise ValueError(f"{url!r}: a port is needed, e.g. {example}")
    return parts


def url_host(url: str) -> str:
    """The host of an address :func:`host_port_url` accepted."""
    host = urlsplit(url).hostname
    if host is None:
        raise ValueError(f"{url!r}: no host")
    return host
