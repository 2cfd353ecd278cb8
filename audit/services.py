"""Writing audit entries. Views, the CLI and the sign-in signals all come through here."""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import DatabaseError, transaction
from django.http import HttpRequest

from connvo_admin.logs import request_id_var

from . import chain
from .models import Action, AuditEntry, Via

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Origin:
    """Who is acting and from where."""

    user: AbstractBaseUser | None
    username: str
    client_ip: str | None = None
    user_agent: str = ""

    @classmethod
    def from_request(cls, request: HttpRequest) -> Origin:
        user = request.user if request.user.is_authenticated else None
        return cls(
            user=user,
            username=user.get_username() if user else "",
            client_ip=client_ip(request),
            user_agent=request.headers.get("User-Agent", "")[:512],
        )

    @classmethod
    def for_command(cls, user: AbstractBaseUser) -> Origin:
        return cls(user=user, username=user.get_username(), user_agent="manage.py")


def _valid_ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def client_ip(request: HttpRequest) -> str | None:
    """REMOTE_ADDR, or, when the request came through a trusted proxy, the nearest address in
    X-Forwarded-For that is not itself a trusted proxy. Anything else could be forged."""
    remote = _valid_ip(request.META.get("REMOTE_ADDR", ""))
    trusted = set(settings.TRUSTED_PROXIES)
    if remote is None or remote not in trusted:
        return remote
    forwarded = request.headers.get("X-Forwarded-For", "")
    for hop in reversed([part for part in forwarded.split(",") if part.strip()]):
        address = _valid_ip(hop)
        if address is None:
            return remote
        if address not in trusted:
            return address
    return remote


def _fit(value: str | None, field_name: str) -> str:
    """Cut a value to its column, so an oversized header can neither fail the write nor be
    stored differently by different databases (which would break the chain)."""
    return (value or "")[: AuditEntry._meta.get_field(field_name).max_length]


def record(
    *,
    origin: Origin,
    action: Action,
    via: Via | str = "",
    deployment: str = "",
    meeting_id: str = "",
    outcome: str = "",
    http_status: int | None = None,
    latency_ms: int | None = None,
    connvo_request_id: str | None = None,
    detail: str = "",
) -> AuditEntry:
    """Append one entry to the audit chain, in a savepoint of the caller's transaction. Raises
    `DatabaseError` when it cannot be written: callers that show something decide to fail closed."""
    return chain.append(
        actor=origin.user,
        actor_username=_fit(origin.username, "actor_username"),
        action=str(action),
        via=str(via),
        deployment=_fit(deployment, "deployment"),
        meeting_id=_fit(meeting_id, "meeting_id"),
        outcome=_fit(str(outcome), "outcome"),
        http_status=None if http_status is None else int(http_status),
        latency_ms=None if latency_ms is None else int(latency_ms),
        connvo_request_id=_fit(connvo_request_id, "connvo_request_id"),
        client_ip=_valid_ip(origin.client_ip) if origin.client_ip else None,
        user_agent=_fit(origin.user_agent, "user_agent"),
        detail=_fit(detail, "detail"),
        request_id=_fit(request_id_var.get(), "request_id"),
    )


def record_or_log(*, origin: Origin, action: Action, **fields) -> AuditEntry | None:
    """`record()`, failing open: when the entry cannot be written, the failure is logged loudly
    and the caller carries on. For what must happen even while the log is down: refusing a
    sign-in, a sign-out or a lockout page would lock everyone out (auditors included), and a
    refusal stands whether or not it is recorded."""
    try:
        # A savepoint, so a failed write leaves the request's connection usable.
        with transaction.atomic():
            return record(origin=origin, action=action, **fields)
    except DatabaseError:
        logger.exception(
            "audit entry for %s by %r could not be written", action, origin.username or "nobody"
        )
        return None
