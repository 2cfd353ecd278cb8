"""Which address a request came from, as the audit log, the request log and sign-in lockouts
record it (shared, below the apps: the request log needs it before any app is involved)."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from django.conf import settings

if TYPE_CHECKING:  # settings.py reads TRUSTED_PROXIES through valid_ip, before Django is set up
    from django.http import HttpRequest


def valid_ip(value: str) -> str | None:
    """The address in `value`, in its one normal form, or None when it is not one."""
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        # A link-local address may name the host's interface ("fe80::1%eth0"). The database
        # stores the address without it (PostgreSQL's inet cannot hold it), so an audit entry's
        # MAC must not cover it either; and the interface means nothing off this host.
        address = ipaddress.IPv6Address(int(address))
    return str(address)


def client_ip(request: HttpRequest) -> str | None:
    """REMOTE_ADDR, or, when the request came through a trusted proxy, the nearest address in
    X-Forwarded-For that is not itself a trusted proxy. Anything else could be forged."""
    remote = valid_ip(request.META.get("REMOTE_ADDR", ""))
    trusted = set(settings.TRUSTED_PROXIES)
    if remote is None or remote not in trusted:
        return remote
    forwarded = request.headers.get("X-Forwarded-For", "")
    for hop in reversed([part for part in forwarded.split(",") if part.strip()]):
        address = valid_ip(hop)
        if address is None:
            return remote
        if address not in trusted:
            return address
    return remote
