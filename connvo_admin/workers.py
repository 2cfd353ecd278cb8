"""The console's gunicorn worker (gunicorn.conf.py): gunicorn's threaded worker, telling
connvo_admin.capacity how many requests wait for a thread and for how long."""

from __future__ import annotations

from gunicorn.workers.gthread import ThreadWorker

from .capacity import gauge


class ConsoleWorker(ThreadWorker):
    def init_process(self) -> None:
        gauge.threads = self.cfg.threads
        super().init_process()

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
