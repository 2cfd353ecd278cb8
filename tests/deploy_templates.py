"""The nginx site and the systemd unit that docs/deploy.md shows, from their templates in
docs/deploy/: rendered with the doc's values they must equal the doc's code blocks; the
deployment test and bench/audit_volume.py render them with their own ports, paths and
certificate, and run nginx with the site (`Nginx`)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import requests

from tests.production import free_port

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "docs" / "deploy"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"

# What docs/deploy.md shows an operator.
DOC_VALUES = {
    "nginx-site.conf": {
        "gunicorn": "127.0.0.1:8000",
        "push": "127.0.0.1:8001",
        "http_listen": "80",
        "http_listen_ipv6": "[::]:80",
        "https_listen": "443",
        "https_listen_ipv6": "[::]:443",
        "certificate": "/etc/ssl/certs/console.intranet.example.pem",
        "certificate_key": "/etc/ssl/private/console.intranet.example.key",
        "access_log": "/var/log/nginx/connvo-console.access.log",
    },
    "connvo-console.service": {
        "root": "/srv/connvo-console",
        "env_file": "/etc/connvo-console/env",
    },
    "connvo-console-push.service": {
        "root": "/srv/connvo-console",
        "env_file": "/etc/connvo-console/env",
    },
    "connvo-console-relay.service": {
        "root": "/srv/connvo-console",
        "env_file": "/etc/connvo-console/env",
    },
}
# The fenced block of docs/deploy.md that shows each file.
DOC_BLOCK_LANGUAGE = {
    "nginx-site.conf": "nginx",
    "connvo-console.service": "ini",
    # Another INI name for the same highlighting: one template to one language's one block.
    "connvo-console-push.service": "dosini",
    "connvo-console-relay.service": "cfg",
}

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)

_PLACEHOLDER = re.compile(r"\{\{ (\w+) \}\}")


def placeholders(name: str) -> set[str]:
    return set(_PLACEHOLDER.findall((TEMPLATES / name).read_text()))


def render(name: str, values: dict[str, str]) -> str:
    """The template with every placeholder filled; a missing or unused value is an error."""
    template = (TEMPLATES / name).read_text()
    wanted = placeholders(name)
    if wanted != set(values):
        raise ValueError(f"{name} takes {sorted(wanted)}, not {sorted(values)}")
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


def doc_blocks(language: str) -> list[str]:
    """The contents of docs/deploy.md's fenced code blocks in `language`."""
    text = DEPLOY_DOC.read_text()
    return re.findall(rf"^```{language}\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)


# --- The site, run: a self-signed certificate and nginx -----------------------------------------


def self_signed_certificate(directory: Path, host: str) -> tuple[Path, Path]:
    """A certificate for `host` and 127.0.0.1, its own CA, and its key (openssl)."""
    cert, key = directory / "console.pem", directory / "console.key"
    result = subprocess.run(  # noqa: S603
        [  # noqa: S607
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", f"/CN={host}", "-addext", f"subjectAltName=DNS:{host},IP:127.0.0.1",
            # Python's strict verification wants a key usage on a certificate that is its own CA.
            "-addext", "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign",
            "-keyout", str(key), "-out", str(cert),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return cert, key


class Nginx:
    """docs/deploy/nginx-site.conf, rendered with loopback ports and this test's paths, inside a
    minimal main configuration (Debian's nginx.conf holds the site the same way, in `http`)."""

    def __init__(
        self,
        directory: Path,
        upstream: str,
        push: str,
        certificate: tuple[Path, Path],
        *,
        workers: str = "1",
    ) -> None:
        self.dir = directory
        self.http_port, self.https_port = free_port(), free_port()
        self.access_log = directory / "access.log"
        site = render(
            "nginx-site.conf",
            {
                "gunicorn": upstream,
                "push": push,
                "http_listen": f"127.0.0.1:{self.http_port}",
                "http_listen_ipv6": f"[::1]:{self.http_port}",
                "https_listen": f"127.0.0.1:{self.https_port}",
                "https_listen_ipv6": f"[::1]:{self.https_port}",
                "certificate": str(certificate[0]),
                "certificate_key": str(certificate[1]),
                "access_log": str(self.access_log),
            },
        )
        (directory / "site.conf").write_text(site)
        temp = "\n".join(
            f"    {kind}_temp_path {directory / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (directory / "nginx.conf").write_text(
            f"""daemon off;
{"user root;" if os.geteuid() == 0 else ""}
worker_processes {workers};
pid {directory / "nginx.pid"};
error_log {directory / "error.log"} warn;
events {{ worker_connections 512; }}
http {{
{temp}
    access_log {directory / "other.access.log"};
    include {directory / "site.conf"};
}}
"""
        )
        self.process = subprocess.Popen(  # noqa: S603
            [
                NGINX,
                "-p",
                str(directory),
                "-c",
                str(directory / "nginx.conf"),
                "-e",
                str(directory / "error.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.https = f"https://127.0.0.1:{self.https_port}"
        self.http = f"http://127.0.0.1:{self.http_port}"

    def wait_until_serving(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"nginx exited:\n{self.errors()}")
            try:
                requests.get(f"{self.http}/healthz", timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.1)
        raise AssertionError(f"nginx did not start:\n{self.errors()}")

    def errors(self) -> str:
        path = self.dir / "error.log"
        return path.read_text() if path.exists() else ""

    def access_lines(self) -> list[dict]:
        return [json.loads(line) for line in self.access_log.read_text().splitlines() if line]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
