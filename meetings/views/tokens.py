"""The Tokens page: an agent's Connvo token per deployment (pasted, or a Connvo account connected
through WorkOS AuthKit), saved, removed, connected and disconnected."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csp import csp_override
from django.views.decorators.http import require_GET, require_POST

from audit.services import Origin

from .. import connect, credentials, pasted_tokens, workos_auth
from ..deployments import Deployment, UnknownDeployment, deployments, get_deployment
from ..forms import RemoveTokenForm, TokenForm
from ..templatetags.meeting_format import humanize_duration, nearest
from .access import agent_view


def _token_rows(request: HttpRequest, bound: TokenForm | None = None) -> list[dict]:
    stored = credentials.stored_credentials(request.user)
    warning = settings.CONNVO_TOKEN_EXPIRY_WARNING
    rows = []
    for d in deployments().values():
        token = stored.get(d.name)
        pasted = bool(token and not token.is_connected_session)
        lifetime = pasted_tokens.stored_lifetime(token) if pasted else None
        # A token that lasts less than the warning's notice is always "about to expire": that is
        # how long it lasts, said once beside its expiry, not a warning on every visit.
        short_lived = lifetime is not None and lifetime.total_seconds() <= warning
        expired = bool(token and credentials.expires_within(token, seconds=0))
        expires_soon = (
            pasted and not short_lived and credentials.expires_within(token, seconds=warning)
        )
        # This card's button is a primary action only when lookups need it now.
        needs_token = not token or token.session_ended or (pasted and (expired or expires_soon))
        rows.append(
            {
                "deployment": d,
                "token": token,
                "lifetime": lifetime,
                "lasts": _lasting(lifetime),
                "short_lived": short_lived,
                "expired": expired,
                "expires_soon": expires_soon,
                "needs_token": needs_token,
                "takes_pastes": workos_auth.takes_pasted_tokens(d.name),
                "form": bound
                if bound is not None and bound.prefix == d.name
                else TokenForm(initial={"deployment": d.name}, prefix=d.name),
            }
        )
    return rows


def _lasting(lifetime: timedelta | None) -> str:
    """ "5 min", "1 h", "7 d": how long a token lasts, as precisely as an agent needs."""
    if lifetime is None:
        return ""
    seconds = lifetime.total_seconds()
    # Rounded once, to the hour (to the day from a week on), then split: "1 d 23 h 45 min" is
    # "2 d", never "1 d 24 h".
    days, hours = divmod(nearest(seconds / 3600), 24)
    if not days:
        return humanize_duration(seconds)
    if days >= 7:
        return f"{nearest(seconds / 86_400)} d"
    return f"{days} d" + (f" {hours} h" if hours else "")


def _tokens_page(request: HttpRequest, rows: list[dict], status: int = 200) -> HttpResponse:
    return render(request, "meetings/tokens.html", {"rows": rows}, status=status)


def workos_form_action(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The Connect buttons post to the console and are redirected on to WorkOS AuthKit: the
    Tokens page's CSP form-action must allow those origins (and only there). Decided per request,
    since the origins come from the settings."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        origins = workos_auth.workos_origins()
        if not origins:
            return view(request, *args, **kwargs)
        policy = settings.SECURE_CSP
        allowing = csp_override({**policy, "form-action": [*policy["form-action"], *origins]})
        return allowing(view)(request, *args, **kwargs)

    return wrapper


def tokens_page_deployment(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The access helper of the Tokens page's forms: hands the view the `Deployment` its URL
    names; a name that is not configured goes back to the Tokens page with a message."""

    @wraps(view)
    def wrapper(request: HttpRequest, deployment_name: str, **kwargs) -> HttpResponse:
        try:
            deployment = get_deployment(deployment_name)
        except UnknownDeployment as exc:
            messages.error(request, exc.message)
            return redirect("meetings:tokens")
        return view(request, deployment, **kwargs)

    return wrapper


@require_GET
@agent_view
@workos_form_action
def token_list(request: HttpRequest) -> HttpResponse:
    return _tokens_page(request, _token_rows(request))


@require_POST
@agent_view
@tokens_page_deployment
@workos_form_action
def token_save(request: HttpRequest, deployment: Deployment) -> HttpResponse:
    if not workos_auth.takes_pasted_tokens(deployment.name):
        # Its card has no paste form: a page loaded before WorkOS was set up there, or a
        # hand-made request. Said before the paste is even read, so no error about it is lost.
        messages.error(request, str(credentials.PasteNotTaken(deployment.name)))
        return redirect("meetings:tokens")
    form = TokenForm(request.POST, prefix=deployment.name)
    if not form.is_valid() or form.cleaned_data["deployment"] != deployment.name:
        # The paste is never echoed back: it may be a valid secret with a typo around it.
        return _tokens_page(request, _token_rows(request, bound=form), status=400)
    saved = pasted_tokens.save_token(
        user=request.user,
        deployment_name=deployment.name,
        raw_token=form.cleaned_data["token"],
        origin=Origin.from_request(request),
    )
    lasts = _lasting(pasted_tokens.stored_lifetime(saved))
    messages.success(
        request,
        f"Token for {deployment.name} saved (ending …{saved.last4}). It is stored encrypted."
        + (f" It lasts {lasts} from when Connvo issued it." if lasts else ""),
    )
    return redirect("meetings:tokens")


@require_POST
@agent_view
@tokens_page_deployment
def token_remove(request: HttpRequest, deployment: Deployment) -> HttpResponse:
    form = RemoveTokenForm(request.POST)
    if not form.is_valid() or form.cleaned_data["deployment"] != deployment.name:
        messages.error(request, "That deployment does not exist.")
    elif connect.forget(
        user=request.user, deployment_name=deployment.name, origin=Origin.from_request(request)
    ):
        messages.success(request, f"Your token for {deployment.name} was removed.")
    else:
        messages.info(request, f"You had no token saved for {deployment.name}.")
    return redirect("meetings:tokens")


# --- Connecting a Connvo account through WorkOS AuthKit ------------------------------------------


@require_POST
@agent_view
@tokens_page_deployment
def connect_start(request: HttpRequest, deployment: Deployment) -> HttpResponse:
    if not workos_auth.is_workos_deployment(deployment.name):
        messages.error(request, f"Connecting an account is not set up for {deployment.name}.")
        return redirect("meetings:tokens")
    pending = connect.begin_connect(
        deployment_name=deployment.name,
        redirect_uri=request.build_absolute_uri(reverse("meetings:connect_callback")),
    )
    connect.remember_pending(request.session, pending)
    return redirect(pending.url)


@require_GET
@agent_view
@workos_form_action
def connect_callback(request: HttpRequest) -> HttpResponse:
    origin = Origin.from_request(request)
    pending = connect.take_pending(request.session, request.GET.get("state", ""))
    if pending is None:
        connect.fail(origin, "", "callback with an unknown or expired state")
        messages.error(
            request,
            "That sign-in link does not belong to a connection you started here (or it is more "
            "than 15 minutes old), so nothing was connected. Press Connect again.",
        )
        return _tokens_page(request, _token_rows(request), status=400)
    deployment_name = pending.deployment_name
    if request.GET.get("error") or not request.GET.get("code"):
        connect.fail(
            origin, deployment_name, f"WorkOS answered {request.GET.get('error', 'no code')}"
        )
        messages.error(
            request, f"Connecting your Connvo account for {deployment_name} was cancelled."
        )
        return redirect("meetings:tokens")
    try:
        stored = connect.finish_connect(
            user=request.user,
            deployment_name=deployment_name,
            code=request.GET["code"],
            code_verifier=pending.code_verifier,
            origin=origin,
        )
    except connect.ConnectFailed as exc:
        messages.error(request, exc.message)
        return redirect("meetings:tokens")
    messages.success(request, f"Connected to Connvo {deployment_name} as {stored.email}.")
    return redirect("meetings:tokens")


@require_POST
@agent_view
@tokens_page_deployment
def connect_disconnect(request: HttpRequest, deployment: Deployment) -> HttpResponse:
    if connect.forget(
        user=request.user, deployment_name=deployment.name, origin=Origin.from_request(request)
    ):
        messages.success(request, f"Your Connvo account for {deployment.name} is disconnected.")
    else:
        messages.info(request, f"No Connvo account was connected for {deployment.name}.")
    return redirect("meetings:tokens")
