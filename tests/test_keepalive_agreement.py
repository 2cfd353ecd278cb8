"""nginx keeps idle connections to the console's gunicorns for reuse (docs/deploy/nginx-site.conf):
for less time than each gunicorn keeps them, or nginx may send a request on a connection gunicorn
is closing and answer it with a 502."""

from __future__ import annotations

import re
import runpy

import pytest
from gunicorn.config import Config

from tests.deploy_templates import TEMPLATES

ROOT = TEMPLATES.parents[1]


def upstream_keepalive_timeout(upstream: str) -> float:
    site = (TEMPLATES / "nginx-site.conf").read_text()
    block = re.search(rf"^upstream {upstream} \{{\n(.*?)^\}}", site, re.DOTALL | re.MULTILINE)
    assert block, upstream
    timeout = re.search(r"^\s*keepalive_timeout (\d+)s;", block.group(1), re.MULTILINE)
    # Without it nginx keeps an idle upstream connection 60 s.
    return float(timeout.group(1)) if timeout else 60.0


@pytest.mark.parametrize(
    ("upstream", "config"),
    [("connvo_console", "gunicorn.conf.py"), ("connvo_console_push", "gunicorn-push.conf.py")],
)
def test_nginx_lets_an_idle_connection_go_before_gunicorn_does(upstream, config):
    keepalive = runpy.run_path(str(ROOT / config)).get("keepalive", Config().keepalive)

    assert upstream_keepalive_timeout(upstream) < keepalive
