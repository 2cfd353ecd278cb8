"""Sign-in through the company's identity provider (OpenID Connect, via mozilla-django-oidc).

Off unless OIDC_RP_CLIENT_ID is set. A console account belongs to the provider's stable identity
(the identity token's issuer and subject, `iss` + `sub`), linked at that person's first sign-in;
the provider's `preferred_username` (OIDC_USERNAME_CLAIM) only names a new account. A console
account that is not linked (made with a password, or linked to someone else) is never signed into
this way, whatever username the provider sends: a name is not an identity. The groups claim decides
Support and Auditor membership at every sign-in (OIDC_SUPPORT_GROUPS, OIDC_AUDITOR_GROUPS). Someone
in neither group, and the console's superusers, cannot sign in this way: administrators keep their
own password. Tokens from any issuer but OIDC_OP_ISSUER are refused."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from urllib.parse import urlencode

import jwt
import requests
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.models import Group
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import SuspiciousOperation, ValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.urls import reverse
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from audit.services import Origin

from . import access
from .backends import ModelBackend
from .models import ProviderIdentity

logger = logging.getLogger(__name__)

SUPPORT, AUDITOR = "Support", "Auditor"


def _claimed_groups(claims: dict) -> set[str]:
    value = claims.get(settings.OIDC_GROUPS_CLAIM) or []
    if isinstance(value, str):
        value = [value]
    return {str(group) for group in value if group}


def console_groups(claims: dict) -> set[str]:
    """The console groups the provider's groups claim maps to."""
    claimed = _claimed_groups(claims)
    mapped = set()
    if claimed & set(settings.OIDC_SUPPORT_GROUPS):
        mapped.add(SUPPORT)
    if claimed & set(settings.OIDC_AUDITOR_GROUPS):
        mapped.add(AUDITOR)
    return mapped


class CompanyOIDCBackend(OIDCAuthenticationBackend):
    def get_user(self, user_id):
        """The user a session signed in this way names, read as every sign-in's is
        (accounts/backends.py): a deactivated account is nobody, so its sign-in ends at its next
        request (mozilla-django-oidc's own reads the account whether or not it is active). With
        the provider turned off, nobody: its sign-ins end as a backend's do when it is removed
        from AUTHENTICATION_BACKENDS (this one stays listed, doing nothing)."""
        if not settings.OIDC_ENABLED:
            return None
        return ModelBackend().get_user(user_id)

    def authenticate(self, request, **kwargs):
        # Only the callback view passes a nonce; a password sign-in is none of this backend's.
        if not settings.OIDC_ENABLED or request is None or "nonce" not in kwargs:
            return None
        try:
            return super().authenticate(request, **kwargs)
        except (requests.RequestException, SuspiciousOperation, jwt.InvalidTokenError) as exc:
            # No detail for the person (it could help someone forging a sign-in); the log has it.
            logger.warning("identity provider sign-in failed: %s: %s", type(exc).__name__, exc)
            self._tell(
                f"Signing in with {settings.OIDC_PROVIDER_NAME} did not work. Try again; if it "
                "keeps failing, sign in with your console password or tell the console's "
                "administrators."
            )
            return None

    def verify_token(self, token, **kwargs):
        payload = super().verify_token(token, **kwargs)
        # mozilla-django-oidc does not check the audience: a token minted for another
        # application of the same provider must not sign anyone in here.
        audience = payload.get("aud")
        audiences = [audience] if isinstance(audience, str) else list(audience or [])
        if settings.OIDC_RP_CLIENT_ID not in audiences:
            raise SuspiciousOperation("The identity token was issued to another application.")
        if payload.get("iss") != settings.OIDC_OP_ISSUER:
            raise SuspiciousOperation("The identity token was issued by another provider.")
        if not isinstance(payload.get("sub"), str) or not payload["sub"]:
            raise SuspiciousOperation("The identity token names nobody (no subject).")
        return payload

    def get_userinfo(self, access_token, id_token, payload):
        # Some providers put the groups only in the identity token, others only in userinfo.
        # The identity (iss, sub) is the verified token's, never userinfo's.
        userinfo = super().get_userinfo(access_token, id_token, payload)
        if userinfo.get("sub", payload["sub"]) != payload["sub"]:
            raise SuspiciousOperation("userinfo describes someone other than the identity token.")
        return {**payload, **userinfo, "iss": payload["iss"], "sub": payload["sub"]}

    def get_username(self, claims: dict) -> str:
        return str(claims.get(settings.OIDC_USERNAME_CLAIM) or "")

    def verify_claims(self, claims: dict) -> bool:
        username = self.get_username(claims)
        try:
            UnicodeUsernameValidator()(username)
        except ValidationError:
            username = ""
        if not username or len(username) > 150:
            self._tell(
                f"{settings.OIDC_PROVIDER_NAME} did not say who you are (no usable "
                f"“{settings.OIDC_USERNAME_CLAIM}”). Tell the console's administrators."
            )
            return False
        if not console_groups(claims):
            self._tell(
                f"Your {settings.OIDC_PROVIDER_NAME} account is not in a group that may use this "
                "console. Ask to be added to the support or auditor group."
            )
            return False
        return True

    def filter_users_by_claims(self, claims: dict):
        return self.UserModel.objects.filter(
            provider_identity__issuer=claims["iss"], provider_identity__subject=claims["sub"]
        )

    def create_user(self, claims: dict):
        """The first sign-in of this identity: a new console account linked to it, unless its
        username is taken by an account that is not (a password account, or someone else's)."""
        username = self.get_username(claims)
        try:
            with transaction.atomic():
                taken = self.UserModel.objects.filter(username__iexact=username).first()
                if taken is not None:
                    if taken.is_superuser:
                        return self.update_user(taken, claims)  # refuses, and says why
                    raise IntegrityError(username)
                user = self.UserModel.objects.create_user(
                    username,
                    email=claims.get("email") or "",
                    first_name=(claims.get("given_name") or "")[:150],
                    last_name=(claims.get("family_name") or "")[:150],
                )
                ProviderIdentity.objects.create(
                    user=user, issuer=claims["iss"], subject=claims["sub"]
                )
                self._set_groups(user, console_groups(claims), before=None)
        except IntegrityError:
            # The subject is in the log so that an administrator can link the account by hand
            # (admin: identity-provider links) when it really is this person's.
            logger.warning(
                "identity provider sign-in refused: the console account %r is not linked to "
                "subject %r of %s",
                username,
                claims["sub"],
                claims["iss"],
            )
            self._tell(
                f"There is already a console account named {username} that is not linked to "
                f"your {settings.OIDC_PROVIDER_NAME} account, so it cannot be signed into this "
                "way. Sign in with its password, or ask the console's administrators to link it."
            )
            return None
        logger.info("account %s created at its first sign-in with the identity provider", user)
        return user

    def update_user(self, user, claims: dict):
        if not user.is_active:
            # Refused here, so that it is a failed sign-in (recorded) with a reason; returned,
            # the callback would turn it away without a word.
            self._tell(
                "Your console account is deactivated, so it cannot be signed into. Ask the "
                "console's administrators."
            )
            return None
        if user.is_superuser:
            self._tell(
                "Administrators sign in with their console password, not with "
                f"{settings.OIDC_PROVIDER_NAME}."
            )
            return None
        with transaction.atomic():
            user.email = claims.get("email") or user.email
            user.save(update_fields=["email"])
            self._set_groups(user, console_groups(claims), before=access.access_of(user.pk))
        return user

    def _set_groups(self, user, wanted: Iterable[str], *, before: access.Access | None) -> None:
        """The provider decides Support and Auditor; any other group is left as it is. What
        that changed (or the new account) is recorded in the audit log, as the account's own."""
        wanted = set(wanted)
        for group in Group.objects.filter(name__in=[SUPPORT, AUDITOR]):
            if group.name in wanted:
                user.groups.add(group)
            else:
                user.groups.remove(group)
        request = getattr(self, "request", None)
        access.record_access_change(
            origin=(
                Origin.from_request(request, signing_in=user)
                if request is not None
                else Origin(user=user, username=user.get_username())
            ),
            username=user.get_username(),
            before=before,
            after=access.access_of(user.pk),
            how=f"by {settings.OIDC_PROVIDER_NAME}'s groups at sign-in",
        )

    def _tell(self, message: str) -> None:
        request = getattr(self, "request", None)
        if request is not None:
            messages.error(request, message)


def provider_sign_out_url(request: HttpRequest) -> str | None:
    """Where to send the browser so that the provider ends its session too (OpenID Connect
    RP-initiated logout), when the person signed in through the provider and it offers an
    end-session endpoint; None otherwise."""
    if not (settings.OIDC_ENABLED and settings.OIDC_OP_LOGOUT_ENDPOINT):
        return None
    from django.contrib.auth import BACKEND_SESSION_KEY

    if request.session.get(BACKEND_SESSION_KEY) != f"{__name__}.CompanyOIDCBackend":
        return None
    query = urlencode(
        {
            "client_id": settings.OIDC_RP_CLIENT_ID,
            "post_logout_redirect_uri": request.build_absolute_uri(reverse("accounts:login")),
        }
    )
    separator = "&" if "?" in settings.OIDC_OP_LOGOUT_ENDPOINT else "?"
    return f"{settings.OIDC_OP_LOGOUT_ENDPOINT}{separator}{query}"
