"""Site URLs: login views, admin and the progress app."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("statements/", include("statements.urls")),
    path("", include("progress.urls")),
]

# JSON under /api/, Django's pages elsewhere.
handler404 = "progress.web.views.page_not_found"
handler500 = "progress.web.views.server_error"
