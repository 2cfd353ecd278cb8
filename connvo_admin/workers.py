"""The console's gunicorn worker (gunicorn.conf.py): gunicorn's threaded worker, telling
connvo_admin.capacity how many requests wait for a thread and for how long."""

from __future__ import annotations

from gunicorn.workers.gthread import ThreadWorker

from .capacity import gauge, shed_late_refreshes


class ConsoleWorker(ThreadWorker):
    def init_process(self) -> None:
        gauge.threads = self.cfg.threads
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
