from django.urls import path

from . import views

app_name = "audit"

urlpatterns = [
    path("", views.entry_list, name="list"),
    path("meetings/<str:meeting_id>/", views.meeting_history, name="meeting"),
    path("staff/<str:username>/", views.staff_activity, name="staff"),
    path("entries/<int:pk>/", views.entry_detail, name="entry"),
    path("export.<str:fmt>", views.export, name="export"),
]
