"""Sign-in lockouts (django-axes): which failures lock what, what is written to the audit log, and
what the person sees.

Two limits, so that an outsider cannot lock staff out of the console during an incident by
guessing their passwords from elsewhere (a lock on the username alone would let anyone do that):
- SIGN_IN_FAILURE_LIMIT failures for one account from one address pause that account's sign-in
  from that address;
- SIGN_IN_ADDRESS_FAILURE_LIMIT failures from one address, whatever the accounts, pause that
  address (password spraying).
The person at their own desk is never affected by guesses from another address.

What a stranger typed is stored as the audit log stores it (`audit.services.storable`): a username
longer than axes' column, or a character the database cannot hold, is still an attempt that
counts, not a database failure."""

from __future__ import annotations

import dataclasses

from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username
from axes.models import AccessAttempt
from axes.signals import user_locked_out
from django.conf import settings
from django.db.models import F, Sum
from django.http import HttpRequest

from audit import repeats
from audit.models import Action
from audit.services import Origin, storable

LOCKED_OUT = "locked out"


def record_lockout(*, request: HttpRequest, username: str | None) -> None:
    """Record a sign-in refused (or failed) while its account or address is locked out, under
    the username that was tried: the first from its address in a minute as an entry of its own,
    the rest of that minute counted (audit/repeats.py), the usernames in the count's sample."""
    origin = dataclasses.replace(Origin.from_request(request), user=None, username=username or "")
    # Refusing to show the lockout page because the log is down would help nobody.
    repeats.refused(
        origin=origin,
        action=Action.SIGN_IN_FAILED,
        kind=repeats.LOCKED_OUT,
        tried=username or "",
        detail=LOCKED_OUT,
    )


def attempted_username(request: HttpRequest, credentials: dict | None) -> str | None:
    """AXES_USERNAME_CALLABLE: the username tried, where axes itself would read it, in a form
    its column can hold. Cut to the column, two usernames that share their first 255 characters
    share one count: both are still paused, and no account's name is that long (150 at most)."""
    source = credentials if credentials else getattr(request, "data", request.POST)
    username = source.get(settings.AXES_USERNAME_FORM_FIELD)
    if username is None:
        return None
    return storable(str(username))[: AccessAttempt._meta.get_field("username").max_length]


def _count_refused(request: HttpRequest, credentials: dict | None) -> bool:
    """Count a sign-in refused by a lockout already in force (the password was never checked) in
    one narrow UPDATE of its attempt: one more failure, and the pause starts again from now, as
    axes would. axes itself would also append the request's whole query and form to the row
    (`get_data`, `post_data`) under a row lock, three more queries and a row that grows with every
    refused request of a flood. False when there is no such attempt to count (a new username or
    browser from a paused address): axes then records it as usual."""
    return (
        AccessAttempt.objects.filter(
            username=get_client_username(request, credentials),
            ip_address=request.axes_ip_address,
            user_agent=request.axes_user_agent,
        ).update(
            failures_since_start=F("failures_since_start") + 1,
            attempt_time=request.axes_attempt_time,
        )
        > 0
    )


def _failures(attempts) -> int:
    return attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0


class AccountAndAddressLockouts(AxesDatabaseHandler):
    """django-axes' database handler with a second, separate limit per address.

    AXES_LOCKOUT_PARAMETERS makes axes count per username and address together; this adds the
    address's own count. axes compares one number with one limit, so an address over its own
    limit is reported as at least AXES_FAILURE_LIMIT failures, and `request.lockout_scope` says
    which limit it was ("account" or "address") for the lockout page."""

    def user_login_failed(self, sender, credentials: dict, request=None, **kwargs):
        if request is not None:
            # axes cuts these headers to its columns but keeps a NUL, which PostgreSQL refuses.
            # gunicorn refuses such a header anyway; another WSGI server might not.
            for name in ("axes_user_agent", "axes_http_accept", "axes_path_info"):
                if isinstance(value := getattr(request, name, None), str):
                    setattr(request, name, storable(value))
            if getattr(request, "refused_by_lockout", False) and _count_refused(
                request, credentials
            ):
                request.axes_locked_out = True  # the lockout page, and no "wrong password" entry
                request.axes_credentials = credentials
                user_locked_out.send(
                    "axes",
                    request=request,
                    username=get_client_username(request, credentials),
                    ip_address=request.axes_ip_address,
                )
                return None
        return super().user_login_failed(sender, credentials, request, **kwargs)

    def is_locked(self, request, credentials: dict | None = None) -> bool:
        # Asked before any credential is checked (AxesStandaloneBackend): a failure that follows
        # is a refusal by this lockout, not a wrong password.
        locked = super().is_locked(request, credentials)
        if locked and request is not None:
            request.refused_by_lockout = True
        return locked

    def get_failures(self, request, credentials: dict | None = None) -> int:
        account_here = super().get_failures(request, credentials)
        attempts = AccessAttempt.objects.filter(ip_address=request.axes_ip_address)
        if settings.AXES_COOLOFF_TIME is not None:
            attempts = attempts.filter(attempt_time__gte=get_cool_off_threshold(request))
        if _failures(attempts) >= settings.SIGN_IN_ADDRESS_FAILURE_LIMIT:
            request.lockout_scope = "address"
            return max(account_here, settings.AXES_FAILURE_LIMIT)
        request.lockout_scope = "account"
        return account_here
