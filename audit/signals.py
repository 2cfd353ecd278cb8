"""Sign-ins, sign-outs and failed sign-ins, from Django's auth signals, into the audit log.

Only sign-ins that arrive in an HTTP request are recorded: the test client's `force_login()`
signs in with a bare `HttpRequest` that has no method and no origin, which is nobody signing in."""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from connvo_admin.client_address import client_ip

from . import repeats
from .models import Action
from .services import Origin, record_or_log


def _is_http(request: HttpRequest | None) -> bool:
    return request is not None and request.method is not None


def _origin(request: HttpRequest, *, user, username: str) -> Origin:
    return Origin(
        user=user,
        username=username,
        client_ip=client_ip(request),
        user_agent=request.headers.get("User-Agent", ""),
    )


def _record(request: HttpRequest, *, user, action: Action) -> None:
    record_or_log(origin=_origin(request, user=user, username=user.get_username()), action=action)


@receiver(user_logged_in, dispatch_uid="audit_sign_in")
def record_sign_in(sender, request: HttpRequest | None, user, **kwargs) -> None:
    if _is_http(request):
        _record(request, user=user, action=Action.SIGN_IN)


@receiver(user_logged_out, dispatch_uid="audit_sign_out")
def record_sign_out(sender, request: HttpRequest | None, user, **kwargs) -> None:
    if _is_http(request) and user is not None:
        _record(request, user=user, action=Action.SIGN_OUT)


@receiver(user_login_failed, dispatch_uid="audit_sign_in_failed")
def record_failed_sign_in(sender, credentials: dict, request: HttpRequest | None = None, **kwargs):
    # Django has already masked the password in `credentials`; only the username is kept.
    # An attempt django-axes refused for a lockout is recorded as such by accounts/lockouts.py.
    if _is_http(request) and not getattr(request, "axes_locked_out", False):
        # Counted per address and minute (audit/repeats.py): the minute's first names its
        # username in its own entry, the rest are counted with a sample of the usernames tried.
        username = str(credentials.get("username", ""))
        repeats.refused(
            origin=_origin(request, user=None, username=username),
            action=Action.SIGN_IN_FAILED,
            kind=repeats.WRONG_PASSWORD,
            tried=username,
            detail=repeats.WRONG_PASSWORD.words,
        )
