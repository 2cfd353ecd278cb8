"""A fake Connvo deployment in a process of its own (`python -m fakeconnvo`), driven over its
control endpoints (/_fake/): for clients that must not share a process with the fake, such as the
official `convex` client, whose blocking calls hold the GIL while they wait."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import requests

ROOT = Path(__file__).resolve().parents[1]


class FakeProcess:
    """`python -m fakeconnvo --port 0 --quiet`, its URL read from the line it prints."""

    def __init__(self, *, timeout: float = 30, log: bool = True) -> None:
        """`log=False` drops its log (a line for every sync connection opened and closed)."""
        self.timeout = timeout
        self.process = subprocess.Popen(  # our own module, no shell
            [sys.executable, "-m", "fakeconnvo", "--port", "0", "--quiet"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=None if log else subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().split()[-1]
        self.http = requests.Session()

    def control(self, method: str, route: str, body: Any = None) -> Any:
        """Ask the fake's control endpoint `/_fake/<route>`; its JSON answer."""
        response = self.http.request(
            method, f"{self.url}/_fake/{route}", json=body, timeout=self.timeout
        )
        response.raise_for_status()
        return response.json()

    def token(self, user: str, **options: Any) -> str:
        """A Connvo token the fake accepts for `user` (its options: see POST /_fake/tokens)."""
        return self.control("POST", "tokens", {"user": user, **options})["token"]

    def stop(self) -> None:
        self.http.close()
        self.process.terminate()
        self.process.wait(timeout=self.timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
