"""`manage.py` commands each in a process of its own, forked from a server that has imported Django
and WorkOS once: for tests that run many short commands, each under an environment of its own
(test_deploy_checks.py, test_deployment_lists.py, test_database_connections.py).

A command's process is the server's child, forked before anything of the console is imported: it
takes the command's environment as its own, then runs manage.py as `python manage.py` does, so the
console's settings are read from that environment and the app is loaded and checked from scratch.
All that it is spared is importing the libraries (Django's management commands, WorkOS: about a
second of each command's start, the most of a short one's time). What the interpreter itself reads
from the environment as it starts (Python's settings, the locale) is the server's, so a command
may only ask for the server's (`ManageForks` refuses otherwise). How the console starts in a fresh
interpreter, the WSGI import and gunicorn, is tested in processes of their own
(`production.manage`, or the command itself).

Run as a script, this is the server: a job a line on its standard input (JSON: the arguments, the
environment, the files for the command's standard input, output and error), its exit status a line
on its standard output once it has ended.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import locale
import os
import runpy
import select
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def at_start(env: dict[str, str]) -> dict[str, str]:
    """What of `env` the interpreter reads as it starts, before any code runs."""
    return {
        name: value
        for name, value in env.items()
        if name.startswith(("PYTHON", "LC_")) or name == "LANG"
    }


def serve() -> None:
    sys.path[0] = str(ROOT)  # as for `python manage.py`: the script's directory
    # The libraries only: none of them reads the console's settings or its environment on import.
    import django.core.management  # noqa: F401
    import workos  # noqa: F401

    jobs, replies = 0, os.dup(1)
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)  # nothing the server itself prints is taken for a reply
    os.close(quiet)
    pending = b""
    while True:
        while b"\n" not in pending:
            read = os.read(jobs, 1 << 16)
            if not read:
                return
            pending += read
        line, pending = pending.split(b"\n", 1)
        job = json.loads(line)
        child = os.fork()
        if child == 0:
            _exit(_run, job, replies)
        _, status = os.waitpid(child, 0)
        os.write(replies, b"%d\n" % os.waitstatus_to_exitcode(status))


def _run(job: dict, replies: int) -> None:
    """In the forked child: become the command's process (its files, its environment, its
    arguments) and run manage.py."""
    written = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    files = [
        os.open(job["stdin"], os.O_RDONLY),
        os.open(job["stdout"], written, 0o600),
        os.open(job["stderr"], written, 0o600),
    ]
    for fd, opened in enumerate(files):  # the jobs' pipe (0) and the server's devnull (1) too
        os.dup2(opened, fd)
    for opened in [*files, replies]:
        os.close(opened)
    os.environ.clear()
    os.environ.update(job["env"])
    sys.argv = ["manage.py", *job["args"]]
    runpy.run_path(str(ROOT / "manage.py"), run_name="__main__")


def _exit(run, *args) -> None:
    """Run `run(*args)` and end the process as the interpreter ends `python manage.py`:
    SystemExit's code (None: 0; a message: printed, 1), or an exception's traceback and 1; the exit
    handlers run and the output flushed. Without tearing down every module the server imported:
    a command refused as the settings load would take longer to end than to run. (The interpreter
    would also wait for threads left running; these commands leave none.)"""
    try:
        run(*args)
        code = 0
    except SystemExit as stop:
        if stop.code is None or isinstance(stop.code, int):
            code = stop.code or 0
        else:
            print(stop.code, file=sys.stderr)
            code = 1
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


class ManageForks:
    """A fork server of this module's, started at the first command, its files in `work_dir` (by
    default a temporary folder of its own); `close()` stops it, as does the end of the process
    that started it. Called as `production.manage` is, it answers as that does (a
    CompletedProcess, text)."""

    def __init__(self, work_dir: Path | None = None) -> None:
        self.given_dir = self.work_dir = work_dir
        self.process: subprocess.Popen | None = None
        self.owner = 0  # the process that started the server: a fork of that one starts its own
        self.started_with: dict[str, str] = {}
        self.runs = 0

    def __call__(
        self, *args: str, env: dict[str, str], input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess:
        if self.process is None or self.owner != os.getpid():
            self._start(env)
        elif at_start(env) != self.started_with:
            raise ValueError(
                f"the fork server's interpreter started with {self.started_with}, not "
                f"{at_start(env)}: run this command in a process of its own (production.manage)"
            )
        self.runs += 1
        files = {
            name: self.work_dir / f"{self.runs}.{name}" for name in ("stdin", "stdout", "stderr")
        }
        files["stdin"].write_text(input or "")
        job = {"args": list(args), "env": env} | {name: str(p) for name, p in files.items()}
        try:
            self.process.stdin.write(json.dumps(job).encode() + b"\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            raise AssertionError(f"the fork server exited:\n{self._log.read_text()}") from None
        if not select.select([self.process.stdout], [], [], timeout)[0]:
            self.close(kill=True)
            raise subprocess.TimeoutExpired(["manage.py", *args], timeout)
        reply = self.process.stdout.readline()
        if not reply:
            raise AssertionError(f"the fork server exited:\n{self._log.read_text()}")
        encoding = locale.getencoding()
        return subprocess.CompletedProcess(
            [sys.executable, "manage.py", *args],
            int(reply),
            files["stdout"].read_text(encoding=encoding),
            files["stderr"].read_text(encoding=encoding),
        )

    def _start(self, env: dict[str, str]) -> None:
        self.owner = os.getpid()
        if self.given_dir is None:
            self.work_dir = Path(tempfile.mkdtemp(prefix="manage-forked-"))
            atexit.register(_remove, self.work_dir, self.owner)
        self.started_with = at_start(env)
        self._log = self.work_dir / "server.log"
        with self._log.open("w") as log:
            self.process = subprocess.Popen(  # noqa: S603 (the test's own command line)
                [sys.executable, __file__],
                cwd=ROOT,
                env={"PATH": env.get("PATH", os.defpath)} | self.started_with,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,
            )
        atexit.register(self.close)

    def close(self, *, kill: bool = False) -> None:
        if self.process is None or self.owner != os.getpid():
            self.process = None
            return
        if kill:
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(BrokenPipeError):  # a server that has died
            self.process.stdin.close()
        self.process.wait(timeout=30)
        self.process.stdout.close()
        self.process = None


def _remove(folder: Path, owner: int) -> None:
    if os.getpid() == owner:
        shutil.rmtree(folder, ignore_errors=True)


# One for each test process (each xdist worker), shared by the modules that run commands with it.
manage_forked = ManageForks()

if __name__ == "__main__":
    serve()
