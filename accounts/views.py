"""The sign-in page, the lockout page, and the two ends of identity-provider sign-in."""

from __future__ import annotations

from urllib.parse import urlsplit

from axes.helpers import get_client_username, get_cool_off
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView, LogoutView
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render, resolve_url
from django.views.decorators.http import require_POST
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from audit import views as audit_views

from .oidc import provider_sign_out_url

HTTP_TOO_MANY_REQUESTS = 429


@require_POST
def sign_out(request: HttpRequest) -> HttpResponse:
    """Sign out of the console, and of the identity provider too when that is how the person
    signed in (otherwise the next "Sign in with …" would sign them straight back in)."""
    at_provider = provider_sign_out_url(request)
    response = LogoutView.as_view()(request)
    return redirect(at_provider) if at_provider else response


class SignInForm(AuthenticationForm):
    """Django's sign-in form; after a wrong password the cursor waits in the password field (the
    username is still filled in), so the person can simply type again."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.is_bound:
            self.fields["username"].widget.attrs.pop("autofocus", None)
            self.fields["password"].widget.attrs["autofocus"] = True


def sign_in(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated and _next_is_sign_in(request):
        # Django's view would raise "Redirection loop for authenticated user detected" (a 500)
        # for a link such as /accounts/login/?next=/accounts/login/.
        return redirect(settings.LOGIN_REDIRECT_URL)
    view = LoginView.as_view(
        template_name="accounts/login.html",
        authentication_form=SignInForm,
        redirect_authenticated_user=True,
        extra_context={
            "oidc_provider": settings.OIDC_PROVIDER_NAME if settings.OIDC_ENABLED else "",
            "failure_limit": settings.AXES_FAILURE_LIMIT,
            "pause_minutes": max(1, round(settings.AXES_COOLOFF_TIME.total_seconds() / 60)),
        },
    )
    return view(request)


def already_signed_in(request: HttpRequest) -> HttpResponse | None:
    """A sign-in form refused by the CSRF check because its person signed in meanwhile, in
    another tab (signing in renews the CSRF secret, so every other tab's sign-in form is stale):
    on to where that tab was going, saying so, rather than "the form did not come from this
    console". Nobody is signed in by it, so a forged form gains nothing. None otherwise."""
    user = getattr(request, "user", None)  # a refusal before the user was read has none
    if not (
        request.method == "POST"
        and request.path == resolve_url(settings.LOGIN_URL)
        and user is not None
        and user.is_authenticated
    ):
        return None
    wanted = _next_of(request)
    if not wanted or _next_is_sign_in(request):
        wanted = resolve_url(settings.LOGIN_REDIRECT_URL)
    messages.info(request, f"You are signed in as {user.get_username()} (in another tab).")
    return redirect(wanted)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: a stale sign-in form of someone signed in meanwhile takes them on;
    anything else is the audit's refusal (recorded)."""
    return already_signed_in(request) or audit_views.csrf_failure(request, reason)


def _next_of(request: HttpRequest) -> str:
    """Where the sign-in goes on to, read and checked as Django's LoginView does ("" when none,
    or one that is not the console's)."""
    return LoginView().get_redirect_url(request)


def _next_is_sign_in(request: HttpRequest) -> bool:
    return urlsplit(_next_of(request)).path == request.path


def locked_out(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """What django-axes answers instead of the sign-in page while a lockout lasts."""
    cool_off = get_cool_off(request)
    by_address = getattr(request, "lockout_scope", "account") == "address"
    context = {
        "by_address": by_address,
        "failure_limit": settings.SIGN_IN_ADDRESS_FAILURE_LIMIT
        if by_address
        else settings.AXES_FAILURE_LIMIT,
        "minutes": max(1, round(cool_off.total_seconds() / 60)) if cool_off else None,
        "username": get_client_username(
            request, credentials if isinstance(credentials, dict) else None
        )
        or "",
    }
    return render(request, "accounts/locked_out.html", context, status=HTTP_TOO_MANY_REQUESTS)


def _require_oidc() -> None:
    if not settings.OIDC_ENABLED:
        raise Http404("Sign-in through an identity provider is not configured.")


def oidc_start(request: HttpRequest) -> HttpResponse:
    """Off to the identity provider (it sends the person back to `oidc_callback`)."""
    _require_oidc()
    return OIDCAuthenticationRequestView.as_view()(request)


def oidc_callback(request: HttpRequest) -> HttpResponse:
    _require_oidc()
    return OIDCAuthenticationCallbackView.as_view()(request)
