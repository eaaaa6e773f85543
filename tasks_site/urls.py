"""Site URLs: login views, admin, the statements example and the progress app. Web processes.

The app is the site by default. With MOUNT_PROGRESS_AT set it sits under that prefix, and
the host's own home page takes "/", as in a project that adopts the app beside its pages.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path
from django.views.generic import TemplateView

urlpatterns: list[URLPattern | URLResolver] = [
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("statements/", include("statements.urls")),
    path(settings.MOUNT_PROGRESS_AT, include("progress.urls")),
]
if settings.MOUNT_PROGRESS_AT:
    urlpatterns.insert(0, path("", TemplateView.as_view(template_name="home.html"), name="home"))

# JSON for the progress API's errors, wherever it is mounted; Django's pages elsewhere.
handler404 = "progress.web.views.page_not_found"
handler500 = "progress.web.views.server_error"
