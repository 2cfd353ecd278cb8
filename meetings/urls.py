from django.urls import path

from . import views

app_name = "meetings"

urlpatterns = [
    path("", views.start_page, name="lookup"),
    path("meetings/<str:deployment_name>/<str:meeting_id>/", views.meeting_detail, name="detail"),
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
