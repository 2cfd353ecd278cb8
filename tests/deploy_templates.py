"""The nginx site and the systemd unit that docs/deploy.md shows, from their templates in
docs/deploy/: rendered with the doc's values they must equal the doc's code blocks; the
deployment test renders them with its own ports, paths and certificate."""

from __future__ import annotations

import re
from pathlib import Path

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
}
# The fenced block of docs/deploy.md that shows each file.
DOC_BLOCK_LANGUAGE = {
    "nginx-site.conf": "nginx",
    "connvo-console.service": "ini",
    # Another INI name for the same highlighting: one template to one language's one block.
    "connvo-console-push.service": "dosini",
}

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
