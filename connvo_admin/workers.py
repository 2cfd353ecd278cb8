"""The console's gunicorn worker (gunicorn.conf.py): gunicorn's threaded worker, telling
connvo_admin.capacity how many requests wait for a thread and for how long."""

from __future__ import annotations

import sys

from gunicorn.workers.gthread import ThreadWorker

from .capacity import gauge, shed_late_refreshes

SWITCH_INTERVAL = 0.001  # seconds


class ConsoleWorker(ThreadWorker):
    def init_process(self) -> None:
        gauge.threads = self.cfg.threads
        # Python hands the GIL from one thread to another every 5 ms by default. Under load the
        # thread that accepts connections and notices requests waiting (gunicorn's main loop)
        # then waits its turn behind the threads serving requests, and a request can sit unseen
        # in its socket, outside any budget, for seconds. Every 1 ms: at three times capacity the
        # slowest refresh went from 3.2 s to 1.4 s, at no measurable cost to throughput
        # (docs/performance.md).
        sys.setswitchinterval(SWITCH_INTERVAL)
        super().init_process()

    def load_wsgi(self) -> None:
        super().load_wsgi()
        # A live refresh that waited too long is refused before Django sees it (capacity.py).
        self.wsgi = shed_late_refreshes(self.wsgi)

    def enqueue_req(self, conn) -> None:
        conn.console_ready_at = gauge.ready()
        super().enqueue_req(conn)

    def handle(self, conn):
        gauge.started(getattr(conn, "console_ready_at", None))
        conn.console_ready_at = None
        try:
            return super().handle(conn)
        finally:
            gauge.finished()
