from django.urls import path

from . import views

app_name = "meetings"

urlpatterns = [
    path("", views.start_page, name="lookup"),
    path("meetings/<str:deployment_name>/<str:meeting_id>/", views.meeting_detail, name="detail"),
    path("meetings/<str:deployment_name>/<str:meeting_id>/watch/", views.watch, name="watch"),
    path("meetings/<str:deployment_name>/<str:meeting_id>/unwatch/", views.unwatch, name="unwatch"),
    path("table/<str:deployment_name>/", views.meeting_table, name="table"),
    path("watching/", views.watching, name="watching"),
    path("tokens/", views.token_list, name="tokens"),
    path("tokens/<str:deployment_name>/save/", views.token_save, name="token_save"),
    path("tokens/<str:deployment_name>/remove/", views.token_remove, name="token_remove"),
    path("tokens/<str:deployment_name>/connect/", views.connect_start, name="connect_start"),
    path(
        "tokens/<str:deployment_name>/disconnect/",
        views.connect_disconnect,
        name="connect_disconnect",
    ),
    path("connvo/callback/", views.connect_callback, name="connect_callback"),
]
