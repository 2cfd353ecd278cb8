from django.apps import AppConfig


class MeetingsConfig(AppConfig):
    name = "meetings"
    verbose_name = "Connvo meetings"

    def ready(self) -> None:
        from . import signals  # noqa: F401 (an account's deletion forgets its credentials)
