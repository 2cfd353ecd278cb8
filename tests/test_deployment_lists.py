"""The lists of deployments in the settings (connvo_admin/settings.py) name only deployments that
exist: a misspelt name would leave real customers' meetings without the production stripe, or a
deployment pushing where it must poll. Loaded in production mode, as gunicorn loads them."""

from __future__ import annotations

import json

import pytest

from tests.forked_manage import manage_forked
from tests.production import production_env

SHOW = (
    "import json; from django.conf import settings as s; "
    "print(json.dumps(s.CONNVO_PRODUCTION_DEPLOYMENTS))"
)
DEPLOYMENTS = "dev=https://dev.example,prod=https://prod.example"


def load(**env: str):
    settings = production_env(**env)
    if "CONNVO_PRODUCTION_DEPLOYMENTS" not in env:
        del settings["CONNVO_PRODUCTION_DEPLOYMENTS"]  # the default, as an operator leaves it
    return manage_forked("shell", "--verbosity", "0", "-c", SHOW, env=settings)


@pytest.mark.parametrize(
    "name", ["CONNVO_PRODUCTION_DEPLOYMENTS", "CONNVO_POLLING_ONLY_DEPLOYMENTS"]
)
def test_a_list_naming_a_deployment_that_does_not_exist_is_refused(name):
    result = load(CONNVO_DEPLOYMENTS=DEPLOYMENTS, **{name: "prd"})

    assert result.returncode != 0
    assert f"{name} names deployments that are not in CONNVO_DEPLOYMENTS: prd." in result.stderr


def test_prod_is_the_production_deployment_where_there_is_one():
    result = load(CONNVO_DEPLOYMENTS=DEPLOYMENTS)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["prod"]

    result = load(CONNVO_DEPLOYMENTS="dev=https://dev.example", CONNVO_DEFAULT_DEPLOYMENT="dev")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_the_operator_names_the_production_deployments():
    result = load(CONNVO_DEPLOYMENTS=DEPLOYMENTS, CONNVO_PRODUCTION_DEPLOYMENTS="dev,prod")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["dev", "prod"]
