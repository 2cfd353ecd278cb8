"""The Connvo deployments the console is configured for (CONNVO_DEPLOYMENTS): a name in a URL or a
form becomes a `Deployment` here, or a refusal."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from connvo_admin.outcomes import LookupFailed, Outcome


@dataclass(frozen=True, slots=True)
class Deployment:
    name: str
    url: str
    is_production: bool = False


class UnknownDeployment(LookupFailed):
    outcome = Outcome.UNKNOWN_DEPLOYMENT


def deployments() -> dict[str, Deployment]:
    production = set(settings.CONNVO_PRODUCTION_DEPLOYMENTS)
    return {
        name: Deployment(name=name, url=url.rstrip("/"), is_production=name in production)
        for name, url in settings.CONNVO_DEPLOYMENTS.items()
    }


def production_names() -> frozenset[str]:
    """The deployments whose meetings are real customers' (tagged so wherever one is named)."""
    return frozenset(name for name, deployment in deployments().items() if deployment.is_production)


def get_deployment(name: str) -> Deployment:
    try:
        return deployments()[name]
    except KeyError:
        known = ", ".join(deployments())
        raise UnknownDeployment(
            f"There is no Connvo deployment called “{name}”. Choose one of: {known}."
        ) from None
