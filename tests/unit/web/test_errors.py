"""The API's JSON error pages, wherever the project mounts the app, and only for the API."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.test import Client, override_settings
from django.urls import include, path

from progress.web.views import page_not_found

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]


def host_api(request: HttpRequest) -> HttpResponse:
    """The host project's own /api/: a POST without CSRF is its business, not progress's."""
    return HttpResponse("host")


# This module is the URLconf: the app under /tools/progress/, the host's own /api/ beside it.
urlpatterns = [
    path("tools/progress/", include("progress.urls")),
    path("api/host/", host_api),
]
handler404 = page_not_found

CSRF = override_settings(CSRF_FAILURE_VIEW="progress.web.views.csrf_failure")


def test_a_missing_api_path_under_the_prefix_is_json(client: Client) -> None:
    response = client.get("/tools/progress/api/jobs/a/b/")
    assert response.status_code == 404
    assert response.json() == {"error": "Not found."}


def test_the_hosts_own_paths_keep_its_404_page(client: Client) -> None:
    for path_ in ("/api/nothing/", "/tools/nothing/", "/tools/progress/nothing/"):
        response = client.get(path_)
        assert response.status_code == 404
        assert response["Content-Type"].startswith("text/html"), path_


@CSRF
def test_a_csrf_failure_of_the_api_is_json_and_elsewhere_the_page(alice: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    api = client.post("/tools/progress/api/jobs/", {"task": "x"}, content_type="application/json")
    assert api.status_code == 403 and "X-CSRFToken" in api.json()["error"]
    host = client.post("/api/host/")
    assert host.status_code == 403 and host["Content-Type"].startswith("text/html")
