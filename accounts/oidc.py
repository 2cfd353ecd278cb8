"""Sign-in through the company's identity provider (OpenID Connect, via mozilla-django-oidc).

Off unless OIDC_RP_CLIENT_ID is set. The provider's `preferred_username` (OIDC_USERNAME_CLAIM)
is the console username; its groups claim decides Support and Auditor membership at every
sign-in (OIDC_SUPPORT_GROUPS, OIDC_AUDITOR_GROUPS). Someone in neither group, and the console's
superusers, cannot sign in this way: administrators keep their own password."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import jwt
import requests
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.models import Group
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import SuspiciousOperation, ValidationError
from django.db import transaction
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

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
        return payload

    def get_userinfo(self, access_token, id_token, payload):
        # Some providers put the groups only in the identity token, others only in userinfo.
        return {**payload, **super().get_userinfo(access_token, id_token, payload)}

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
        return self.UserModel.objects.filter(username__iexact=self.get_username(claims))

    def create_user(self, claims: dict):
        with transaction.atomic():
            user = self.UserModel.objects.create_user(
                self.get_username(claims),
                email=claims.get("email") or "",
                first_name=(claims.get("given_name") or "")[:150],
                last_name=(claims.get("family_name") or "")[:150],
            )
            self._set_groups(user, console_groups(claims))
        logger.info("account %s created at its first sign-in with the identity provider", user)
        return user

    def update_user(self, user, claims: dict):
        if user.is_superuser:
            self._tell(
                "Administrators sign in with their console password, not with "
                f"{settings.OIDC_PROVIDER_NAME}."
            )
            return None
        with transaction.atomic():
            user.email = claims.get("email") or user.email
            user.save(update_fields=["email"])
            self._set_groups(user, console_groups(claims))
        return user

    def _set_groups(self, user, wanted: Iterable[str]) -> None:
        """The provider decides Support and Auditor; any other group is left as it is."""
        wanted = set(wanted)
        for group in Group.objects.filter(name__in=[SUPPORT, AUDITOR]):
            if group.name in wanted:
                user.groups.add(group)
            else:
                user.groups.remove(group)

    def _tell(self, message: str) -> None:
        request = getattr(self, "request", None)
        if request is not None:
            messages.error(request, message)
