from django.contrib import admin
from django.http import HttpRequest, HttpResponseRedirect
from django.templatetags.static import static
from django.urls import include, path

admin.site.site_header = "Connvo Support Console administration"
admin.site.site_title = "Connvo Support Console admin"


def favicon(request: HttpRequest) -> HttpResponseRedirect:
    """Browsers ask for /favicon.ico on pages that name no icon; the console's is an SVG."""
    return HttpResponseRedirect(static("favicon.svg"))


# /healthz and /readyz are answered by connvo_admin.health.HealthCheckMiddleware.
urlpatterns = [
    path("accounts/", include("accounts.urls")),
    path("admin/", admin.site.urls),
    path("audit/", include("audit.urls")),
    path("favicon.ico", favicon),
    path("", include("meetings.urls")),
]

# Every refusal is written to the audit log before the 403 page is shown.
handler403 = "audit.views.permission_denied"
# A database failure outside a view (the session, read or saved) gets the database page too.
handler500 = "connvo_admin.unavailable.server_error"
handler400 = "connvo_admin.unavailable.bad_request"
