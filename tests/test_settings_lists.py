"""Lists and name=url pairs in the environment (connvo_admin/environment.py): "a, b" is two
items, "a" and "b", as it is usually written. django-environ kept the space: a deployment named
" prod" lost the production stripe (CONNVO_PRODUCTION_DEPLOYMENTS' default no longer found
"prod") and lived at /meetings/%20prod/…; a group " connvo-leads" or a host " console" never
matched; nothing said so. A deployment's name must be one an address can hold."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from hypothesis import given
from hypothesis import strategies as st

from connvo_admin.environment import Env
from tests.settings_loader import load_settings


def env_with(**values: str) -> Env:
    env = Env()
    env.ENVIRON = values
    return env


def test_a_space_after_a_comma_keeps_every_name_as_written():
    loaded = load_settings(
        {
            "DEBUG": "true",
            "CONNVO_DEPLOYMENTS": "dev=https://Connvo-dev.convex.cloud, "
            "prod=https://Connvo-prod.convex.cloud",
            "OIDC_SUPPORT_GROUPS": "connvo-support, connvo-leads",
            "ALLOWED_HOSTS": "console.intranet.example, console",
        }
    )

    assert loaded["CONNVO_DEPLOYMENTS"] == {
        "dev": "https://Connvo-dev.convex.cloud",
        "prod": "https://Connvo-prod.convex.cloud",
    }
    assert loaded["CONNVO_PRODUCTION_DEPLOYMENTS"] == ["prod"]
    assert loaded["OIDC_SUPPORT_GROUPS"] == ["connvo-support", "connvo-leads"]
    assert loaded["ALLOWED_HOSTS"] == ["console.intranet.example", "console"]


@pytest.mark.parametrize(
    "value",
    [
        "pr od=https://prod.example",  # a name an address cannot hold as written
        "prod/eu=https://prod.example",
        "prod",  # no URL
        "=https://prod.example",
        "dev=https://dev.example,prod=",
        ",",
    ],
)
def test_a_deployment_list_that_cannot_be_read_is_refused_by_name(value):
    with pytest.raises(ImproperlyConfigured, match=r"^CONNVO_DEPLOYMENTS "):
        load_settings({"DEBUG": "true", "CONNVO_DEPLOYMENTS": value})


def test_a_refused_deployment_does_not_quote_a_password_in_its_url():
    with pytest.raises(ImproperlyConfigured) as refused:
        load_settings({"DEBUG": "true", "CONNVO_DEPLOYMENTS": "pr od=https://u:s3cret@x.example"})

    assert "s3cret" not in str(refused.value)


names = st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True)
spaces = st.sampled_from(["", " ", "  ", "\t"])


@given(st.lists(st.tuples(spaces, names, spaces), min_size=1, max_size=5, unique_by=lambda t: t[1]))
def test_any_names_with_spaces_around_them_read_as_the_names(items):
    env = env_with(
        NAMES=",".join(f"{before}{name}{after}" for before, name, after in items),
        PAIRS=",".join(
            f"{before}{name}{after}={after}https://{name}.example" for before, name, after in items
        ),
    )

    assert env.list("NAMES") == [name for _, name, _ in items]
    assert env.deployments("PAIRS", default={}) == {
        name: f"https://{name}.example" for _, name, _ in items
    }


@given(st.text(max_size=40))
def test_any_deployment_text_is_read_or_refused_by_name(text):
    env = env_with(PAIRS=text)
    try:
        pairs = env.deployments("PAIRS", default={})
    except ImproperlyConfigured as exc:
        assert str(exc).startswith("PAIRS ")
        return
    assert pairs
    for name, url in pairs.items():
        assert name == name.strip() and url == url.strip() and url
