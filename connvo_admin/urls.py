from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

accounts_patterns = (
    [
        path(
            "login/",
            auth_views.LoginView.as_view(
                template_name="accounts/login.html", redirect_authenticated_user=True
            ),
            name="login",
        ),
        path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    ],
    "accounts",
)

urlpatterns = [
    path("accounts/", include(accounts_patterns)),
    path("admin/", admin.site.urls),
    path("", include("meetings.urls")),
]
