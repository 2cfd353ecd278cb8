from django.urls import path, register_converter
from django.urls.converters import PathConverter

from . import views
from .services import storable


class AnyTextConverter(PathConverter):
    """Any non-empty text, line breaks included: the log holds usernames tried at sign-in and
    meeting references typed into URLs, and strangers choose those (`eve\\nx`, `%0D%0A`). Path's
    own `.+` stops at a line break, so `{% url %}` failed and the whole page with it."""

    regex = r"[\s\S]+"

    def to_python(self, value: str) -> str:
        # As the log stored it (a NUL became U+FFFD): the page looks up what was written, and
        # no query carries a character the database refuses.
        return storable(value)


register_converter(AnyTextConverter, "anytext")

app_name = "audit"

urlpatterns = [
    path("", views.entry_list, name="list"),
    # The log also holds what people typed that was not a valid ID, and usernames tried at
    # sign-in; either may contain a "/" or a line break.
    path("meetings/<anytext:meeting_id>/", views.meeting_history, name="meeting"),
    path("staff/<anytext:username>/", views.staff_activity, name="staff"),
    path("entries/<int:pk>/", views.entry_detail, name="entry"),
    path("export.<str:fmt>", views.export, name="export"),
]
