from django.urls import include, path

from .views import lookup, push, tables, tokens

app_name = "meetings"
# Where the push server's streams are (the console's URLs include these at its root).
PUSH_STREAMS = "live/"

urlpatterns = [
    path("", lookup.start_page, name="lookup"),
    path("meetings/<str:deployment_name>/<str:meeting_id>/", lookup.meeting_detail, name="detail"),
    path("meetings/<str:deployment_name>/<str:meeting_id>/watch/", tables.watch, name="watch"),
    path(
        "meetings/<str:deployment_name>/<str:meeting_id>/unwatch/", tables.unwatch, name="unwatch"
    ),
    path("table/<str:deployment_name>/", tables.meeting_table, name="table"),
    # Served by the push server (nginx sends /live/ there: docs/deploy.md).
    path(
        PUSH_STREAMS,
        include(
            [
                path(
                    "meetings/<str:deployment_name>/<str:meeting_id>/",
                    push.meeting_stream,
                    name="push",
                ),
                path("table/<str:deployment_name>/", push.table_stream, name="push_table"),
                path("watching/", push.watching_stream, name="push_watching"),
            ]
        ),
    ),
    path("watching/", tables.watching, name="watching"),
    path("tokens/", tokens.token_list, name="tokens"),
    path("tokens/<str:deployment_name>/save/", tokens.token_save, name="token_save"),
    path("tokens/<str:deployment_name>/remove/", tokens.token_remove, name="token_remove"),
    path("tokens/<str:deployment_name>/connect/", tokens.connect_start, name="connect_start"),
    path(
        "tokens/<str:deployment_name>/disconnect/",
        tokens.connect_disconnect,
        name="connect_disconnect",
    ),
    path("connvo/callback/", tokens.connect_callback, name="connect_callback"),
]
