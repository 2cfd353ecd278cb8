from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Signing in and out: password sign-in with lockouts, the company's identity provider,
    and how long a sign-in lasts."""

    name = "accounts"
    verbose_name = "Sign-in"

    def ready(self) -> None:
        from . import signals  # noqa: F401 (connects the receivers)
