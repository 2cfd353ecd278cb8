from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    """The project package as an app, so that its deployment checks are registered."""

    name = "connvo_admin"
    verbose_name = "Connvo Support Console"

    def ready(self) -> None:
        from . import checks  # noqa: F401 (registers the deployment checks)
