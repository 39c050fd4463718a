"""Who is asking, and how often: the client address behind the reverse proxy, and
fixed-window counters in the shared cache (Redis on a server, memory when embedded).

The address rule is written here rather than taken from django-ipware: ipware
counts the proxy's own address inside X-Forwarded-For (``proxy_count``), and it
returned no address at all for a private REMOTE_ADDR such as 127.0.0.1 or a
Docker bridge address, which would put every client under one key. One rule
serves django-axes (AXES_CLIENT_IP_CALLABLE), django-ratelimit
(RATELIMIT_IP_META_KEY) and the candidate socket.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Mapping

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

log = logging.getLogger(__name__)

UNKNOWN = "unknown"


def client_ip(remote_addr: str | None, forwarded_for: str | None) -> str | None:
    """The browser's address. Behind the proxy (BEHIND_PROXY) that is the last entry
    of X-Forwarded-For, the one our proxy appended; entries before it are whatever
    the client sent and are ignored. Otherwise the socket's peer address."""
    if settings.BEHIND_PROXY and forwarded_for:
        last = forwarded_for.rsplit(",", 1)[-1].strip()
        try:
            return str(ipaddress.ip_address(last))
        except ValueError:
            log.warning("X-Forwarded-For ends in %r, not an address; using the peer address", last[:60])
    return remote_addr or None


def request_ip(request: HttpRequest) -> str | None:
    """None for a request without a peer (Django's force_login makes one)."""
    return client_ip(request.META.get("REMOTE_ADDR"), request.META.get("HTTP_X_FORWARDED_FOR"))


def scope_ip(scope: Mapping) -> str:
    """``client_ip`` for an ASGI (websocket) scope."""
    forwarded = [value for name, value in scope.get("headers", ()) if name.lower() == b"x-forwarded-for"]
    client = scope.get("client") or (None,)
    return client_ip(client[0], b",".join(forwarded).decode("latin-1") if forwarded else None) or UNKNOWN


def window_count(name: str, *, window: int = 60, increment: bool = True, windows_ago: int = 0) -> int:
    """Count one more hit of ``name`` in the current fixed window of ``window``
    seconds and return the window's total. Without ``increment``, or for an
    earlier window (``windows_ago``), only read it."""
    key = f"limit:{name}:{int(time.time() // window) - windows_ago}"
    if not increment or windows_ago:
        return int(cache.get(key, 0))
    cache.add(key, 0, window * 2)
    try:
        return cache.incr(key)
    except ValueError:  # the key expired between add and incr
        cache.add(key, 1, window * 2)
        return 1


def take_socket_refused(ip: str) -> bool:
    """A candidate socket from ``ip``: counted against TAKE_REQUESTS_PER_MINUTE, and
    refused while that or TAKE_REFUSALS_PER_MINUTE is spent (the socket's side of
    the pages' django-ratelimit limits; RATELIMIT_ENABLE switches both)."""
    if not getattr(settings, "RATELIMIT_ENABLE", True):
        return False
    if window_count(f"take-refused:{ip}", increment=False) > settings.TAKE_REFUSALS_PER_MINUTE:
        return True
    return window_count(f"take:{ip}") > settings.TAKE_REQUESTS_PER_MINUTE


def take_socket_token_refused(ip: str) -> None:
    if getattr(settings, "RATELIMIT_ENABLE", True):
        window_count(f"take-refused:{ip}")
