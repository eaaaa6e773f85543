"""URLs of the unit tier: the progress app alone, mounted under a prefix of its own."""

from django.urls import include, path

urlpatterns = [path("progress/", include("progress.urls"))]
