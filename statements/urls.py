"""URLs of the statements app."""

from django.urls import path

from . import views

app_name = "statements"

urlpatterns = [
    path("", views.index, name="index"),
    path("<int:pk>/wait/", views.wait, name="wait"),
]
