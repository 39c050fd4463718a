"""Who is asking, and how often: the client address behind the reverse proxy, and
fixed-window counters in the shared cache (Redis on a server, memory when embedded).

The address rule is written here rather than taken from django-ipware: ipware
counts the proxy's own address inside X-Forwarded-For (``proxy_count``), and it
returned no address at all for a private REMOTE_ADDR such as 127.0.0.1 or a
Docker bridge address, which would put every client under one key. One rule
serves django-axes (AXES_CLIENT_IP_CALLABLE) and the candidate links' limits,
pages and socket alike (one set of counters, so a refused token counts the
same on either).

An exam hall is one address: limits never count a valid candidate link per
address, only per token; refused tokens count per address.
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
            address = str(ipaddress.ip_address(last))
        except ValueError:
            log.warning("X-Forwarded-For ends in %r, not an address; using the peer address", last[:60])
        else:
            _first_address(address, "the last X-Forwarded-For entry")
            return address
    if remote_addr:
        _first_address(
            remote_addr, "the peer address" + (", no X-Forwarded-For" if settings.BEHIND_PROXY else "")
        )
    return remote_addr or None


_told = False


def _first_address(address: str, source: str) -> None:
    """Once per process, which client address the server believes and where it read it,
    so an operator can tell "behind a proxy" from "direct" (README, Security): behind a
    proxy, the proxy's own address here means BEHIND_PROXY is off; a browser's address
    with BEHIND_PROXY off means daphne is reachable directly."""
    global _told
    if not _told:
        _told = True
        log.info(
            "client address of the first request: %s (%s; BEHIND_PROXY=%s)",
            address,
            source,
            "true" if settings.BEHIND_PROXY else "false",
        )


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


def _enabled() -> bool:
    return bool(getattr(settings, "RATELIMIT_ENABLE", True))


def address_refusing(ip: str) -> bool:
    """``ip`` sent more than TAKE_REFUSALS_PER_MINUTE refused (unknown or expired)
    tokens this minute: its further refused tokens get 429 (4429 on the socket)
    instead of an answer. Valid tokens from the same address are never refused
    for it: an exam hall is one address, and one guesser there must not lock the
    hall out."""
    return (
        _enabled() and window_count(f"take-refused:{ip}", increment=False) > settings.TAKE_REFUSALS_PER_MINUTE
    )


def token_refused(ip: str) -> bool:
    """A refused token from ``ip``, pages and socket alike. True if the address
    was already over the limit (answer 429, audit nothing); otherwise count it."""
    if not _enabled():
        return False
    if address_refusing(ip):
        return True
    window_count(f"take-refused:{ip}")
    return False


def token_over_budget(candidate_id: int) -> bool:
    """One more request (page or socket) on a valid token: True once that token
    made more than TAKE_TOKEN_REQUESTS_PER_MINUTE this minute. Counted per
    candidate, not per address, so a flood on one link stops that link only.
    The key holds the candidate's id, never the token (the attempt's credential)."""
    return _enabled() and window_count(f"take-token:{candidate_id}") > settings.TAKE_TOKEN_REQUESTS_PER_MINUTE
