"""docs/deploy.md shows exactly the nginx site and systemd units in docs/deploy/ (which the
deployment test runs), and the units are ones systemd accepts."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import PurePosixPath

import pytest

from meetings.relay import STOP_WITHIN
from tests.deploy_templates import (
    DOC_BLOCK_LANGUAGE,
    DOC_VALUES,
    ROOT,
    placeholders,
    render,
)
from tests.deploy_templates import doc_blocks as blocks_of
from tests.production import production_env


@pytest.mark.parametrize("name", sorted(DOC_BLOCK_LANGUAGE))
def test_the_doc_shows_the_template_rendered_with_its_values(name):
    assert blocks_of(DOC_BLOCK_LANGUAGE[name]) == [render(name, DOC_VALUES[name])]


def test_only_addresses_paths_and_certificates_are_placeholders():
    assert placeholders("nginx-site.conf") == {
        "gunicorn",
        "http_listen",
        "http_listen_ipv6",
        "https_listen",
        "https_listen_ipv6",
        "certificate",
        "certificate_key",
        "access_log",
        "push",
    }
    assert placeholders("connvo-console.service") == {"root", "env_file"}
    assert placeholders("connvo-console-push.service") == {"root", "env_file"}
    assert placeholders("connvo-console-relay.service") == {"root", "env_file"}


def test_rendering_refuses_a_missing_or_unknown_value():
    values = dict(DOC_VALUES["connvo-console.service"])
    with pytest.raises(ValueError, match="root"):
        render("connvo-console.service", {"env_file": values["env_file"]})
    with pytest.raises(ValueError, match="port"):
        render("connvo-console.service", values | {"port": "80"})


def _unit_keys(name: str = "connvo-console.service") -> dict[str, dict[str, str]]:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # systemd's keys are case-sensitive
    parser.read_string(render(name, DOC_VALUES[name]))
    return {section: dict(parser[section]) for section in parser.sections()}


def test_the_unit_runs_gunicorn_with_the_committed_config_and_reloads_it_gracefully():
    unit = _unit_keys()
    service = unit["Service"]
    assert service["ExecStart"] == "/srv/connvo-console/.venv/bin/gunicorn -c gunicorn.conf.py"
    assert service["WorkingDirectory"] == "/srv/connvo-console"
    # gunicorn's SIGHUP: new workers, old ones finish their requests (what the test exercises).
    assert service["ExecReload"] == "/bin/kill -s HUP $MAINPID"
    # gunicorn tells systemd when it is ready (sd_notify), and the master, not systemd, stops
    # the workers: KillMode=mixed sends SIGTERM to the master only.
    assert service["Type"] == "notify"
    assert service["KillMode"] == "mixed"
    assert service["User"] == service["Group"] == "connvo"
    assert unit["Install"] == {"WantedBy": "multi-user.target"}


def test_the_unit_waits_longer_to_stop_than_gunicorn_lets_requests_finish():
    """With the default settings, as the doc says; systemd would otherwise SIGKILL lookups."""
    read_graceful_timeout = (
        "import runpy; print(runpy.run_path('gunicorn.conf.py')['graceful_timeout'])"
    )
    result = subprocess.run(  # noqa: S603 (the test's own command line)
        [sys.executable, "-c", read_graceful_timeout],
        cwd=ROOT,
        env=production_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert int(_unit_keys()["Service"]["TimeoutStopSec"]) > int(result.stdout) == 60


def _read_config(path: str, name: str) -> str:
    result = subprocess.run(  # noqa: S603 (the test's own command line)
        [sys.executable, "-c", f"import runpy; print(runpy.run_path({path!r})[{name!r}])"],
        cwd=ROOT,
        env=production_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_push_unit_runs_the_push_server_beside_the_console():
    unit = _unit_keys("connvo-console-push.service")
    service = unit["Service"]
    assert service["ExecStart"] == (
        "/srv/connvo-console/.venv/bin/gunicorn -c gunicorn-push.conf.py"
    )
    assert service["Type"] == "notify" and service["KillMode"] == "mixed"
    assert service["User"] == service["Group"] == "connvo"
    # Its own runtime directory: two units sharing one would remove it from under each other.
    assert service["RuntimeDirectory"] != _unit_keys()["Service"]["RuntimeDirectory"]
    assert int(service["TimeoutStopSec"]) > int(
        _read_config("gunicorn-push.conf.py", "graceful_timeout")
    )


def test_the_relay_unit_runs_one_push_relay_beside_the_push_server():
    unit = _unit_keys("connvo-console-relay.service")
    service = unit["Service"]
    assert service["ExecStart"] == "/srv/connvo-console/.venv/bin/python manage.py push_relay"
    assert service["User"] == service["Group"] == "connvo"
    assert service["Restart"] == "always"
    # Stopping, its streams record what is on its way before systemd would kill it.
    assert int(service["TimeoutStopSec"]) > STOP_WITHIN
    # Its socket is CONNVO_PUSH_RELAY's default (production's settings, as the unit loads them),
    # in a directory of its own, its owner's only.
    default = _read_config("connvo_admin/settings.py", "CONNVO_PUSH_RELAY")
    assert PurePosixPath(default).parent == PurePosixPath("/run", service["RuntimeDirectory"])
    assert service["RuntimeDirectoryMode"] == "0700"
    assert service["RuntimeDirectory"] not in {
        _unit_keys(name)["Service"]["RuntimeDirectory"]
        for name in ("connvo-console.service", "connvo-console-push.service")
    }
    # The push server starts after it and wants it.
    push = _unit_keys("connvo-console-push.service")["Unit"]
    assert "connvo-console-relay.service" in push["After"].split()
    assert "connvo-console-relay.service" in push["Wants"].split()
    assert unit["Unit"]["Before"] == "connvo-console-push.service"


def test_the_push_server_serves_the_asgi_entry_with_uvicorns_worker():
    assert _read_config("gunicorn-push.conf.py", "wsgi_app") == "connvo_admin.asgi:application"
    assert _read_config("gunicorn-push.conf.py", "worker_class") == ("uvicorn_worker.UvicornWorker")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not here")
@pytest.mark.parametrize(
    "name",
    ["connvo-console.service", "connvo-console-push.service", "connvo-console-relay.service"],
)
def test_systemd_accepts_the_unit(tmp_path, name):
    """systemd-analyze verify, with the unit pointing at this checkout (it checks that ExecStart
    exists). It warns, without failing, about unknown keys: any output is a failure here."""
    env_file = tmp_path / "env"
    env_file.write_text("DEBUG=false\n")
    unit = tmp_path / name
    unit.write_text(render(name, {"root": str(ROOT), "env_file": str(env_file)}))
    result = subprocess.run(  # noqa: S603 (the test's own command line)
        ["systemd-analyze", "verify", "--man=no", str(unit)],  # noqa: S607
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == ""
