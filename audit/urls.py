from django.urls import path

from . import views

app_name = "audit"

urlpatterns = [
    path("", views.entry_list, name="list"),
    # `path`: the log also holds what people typed that was not a valid ID, and usernames tried
    # at sign-in; either may contain a "/".
    path("meetings/<path:meeting_id>/", views.meeting_history, name="meeting"),
    path("staff/<path:username>/", views.staff_activity, name="staff"),
    path("entries/<int:pk>/", views.entry_detail, name="entry"),
    path("export.<str:fmt>", views.export, name="export"),
]
