"""WorkOS AuthKit, for the deployments whose agents connect their Connvo account through it
(CONNVO_WORKOS): the SDK client, where it sends browsers, and what its answers and errors mean."""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import workos
from django.conf import settings

DEFAULT_WORKOS_URL = "https://api.workos.com"


def is_workos_deployment(deployment_name: str) -> bool:
    return deployment_name in settings.CONNVO_WORKOS


def takes_pasted_tokens(deployment_name: str) -> bool:
    """Whether agents paste their Connvo token for this deployment: wherever WorkOS is not set up.
    Where it is, their credential is a session the console renews; a pasted token would stand in
    for it with one that lasts minutes and is never renewed. The Tokens page, `connvo_token set`,
    `store_credential` and the "no token" message (meetings/connvo.py) all ask here."""
    return not is_workos_deployment(deployment_name)


@lru_cache(maxsize=8)
def _client(client_id: str, api_key: str, base_url: str, timeout: int) -> workos.WorkOSClient:
    # No SDK retries: retrying a refresh whose answer was lost would spend the single-use
    # refresh token twice, and WorkOS would end the agent's session.
    return workos.WorkOSClient(
        client_id=client_id,
        api_key=api_key,
        base_url=base_url or None,
        request_timeout=timeout,
        max_retries=0,
    )


def workos_client(deployment_name: str) -> workos.WorkOSClient:
    config = settings.CONNVO_WORKOS[deployment_name]
    return _client(
        config["client_id"], config["api_key"], config.get("base_url", ""), settings.WORKOS_TIMEOUT
    )


def workos_origins() -> list[str]:
    """Where the Connect buttons send the agent's browser (for the page's CSP form-action)."""
    origins = set()
    for config in settings.CONNVO_WORKOS.values():
        parts = urlsplit(config.get("base_url") or DEFAULT_WORKOS_URL)
        origins.add(f"{parts.scheme}://{parts.netloc}")
    return sorted(origins)


class NotWorkOSAnswer(Exception):
    """A token exchange (a code, or a refresh token) answered 2xx with something that is not
    WorkOS's JSON, such as a proxy's or captive portal's page: the SDK then gives back None
    instead of raising. Says nothing about the agent's session."""

    # Where the SDK's errors keep theirs, so `describe_error` says it for escalation.
    message = "WorkOS answered with something that is not JSON (a proxy page?)"

    def __str__(self) -> str:
        return self.message


def session_answer[Answer](answer: Answer) -> Answer:
    """The SDK's answer to a token exchange, once it holds both tokens; raises NotWorkOSAnswer
    otherwise. Every exchange goes through here, connecting and renewing alike."""
    if not all(
        isinstance(getattr(answer, name, None), str) and getattr(answer, name)
        for name in ("access_token", "refresh_token")
    ):
        raise NotWorkOSAnswer
    return answer


def is_session_over(exc: BaseException) -> bool:
    """WorkOS answers `invalid_grant` for a refresh token (or code) that is spent, revoked or
    expired. Anything else (network, 5xx, 429, our own credentials) says nothing about the
    agent's session."""
    return (
        isinstance(exc, workos.BadRequestError) and getattr(exc, "error", None) == "invalid_grant"
    )


def describe_error(exc: BaseException) -> str:
    """What WorkOS said, for escalation; never the tokens we sent."""
    parts: list[Any] = [type(exc).__name__]
    for attribute in ("status_code", "error", "code"):
        value = getattr(exc, attribute, None)
        if value:
            parts.append(f"{attribute}={value}")
    description = getattr(exc, "error_description", None) or getattr(exc, "message", "")
    if description:
        parts.append(str(description)[:200])
    return " ".join(str(part) for part in parts)[:500]
