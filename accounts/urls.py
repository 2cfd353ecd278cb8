from django.urls import path

from . import views

app_name = "accounts"

urlpatterns = [
    path("login/", views.sign_in, name="login"),
    path("logout/", views.sign_out, name="logout"),
    path("oidc/start/", views.oidc_start, name="oidc_start"),
    path("oidc/callback/", views.oidc_callback, name="oidc_callback"),
]
