from django.contrib import admin
from django.urls import include, path

# /healthz and /readyz are answered by connvo_admin.health.HealthCheckMiddleware.
urlpatterns = [
    path("accounts/", include("accounts.urls")),
    path("admin/", admin.site.urls),
    path("", include("meetings.urls")),
]
