"""The pages: dashboard, history, a job's page, its download and JSON. Web processes."""

from __future__ import annotations

import hmac
import json
import os
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.utils.http import urlencode
from django.utils.text import get_valid_filename
from django.views import defaults
from django.views.csrf import csrf_failure as django_csrf_failure
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from progress.conf import progress_settings
from progress.core import metrics as process_metrics
from progress.core import reads, registry
from progress.exceptions import JobNotFound
from progress.models import Job
from progress.protocol.states import FINAL_STATES, State

# A placeholder the page's JS replaces with a job id to build URLs.
_ID = "00000000-0000-0000-0000-000000000000"

HISTORY_PAGE_SIZE = 25

# The states the history filters by, in the order its select offers them.
HISTORY_STATES = (State.SUCCESS, State.FAILURE, State.REVOKED)


# Channels routes cannot be reversed: progress/routing.py's path of the consumer.
WS_PATH = "/ws/progress/"


def url_template(name: str) -> str:
    """The path of the job URL `name`, with "{id}" where the page's JS puts a job id."""
    return reverse(name, args=[_ID]).replace(_ID, "{id}")


def live_urls() -> dict[str, str]:
    """Where a page's one live connection goes: progress/live_urls.html sets them as the
    data-progress-*-url attributes client.js requires (the socket, then the fallback's)."""
    return {
        "ws": WS_PATH,
        "events": reverse("progress:api-events"),
        "job_events": url_template("progress:api-job-events"),
        "cancel": url_template("progress:api-job-cancel"),
    }


def _urls() -> dict[str, str]:
    return {
        "jobs_url": reverse("progress:api-jobs"),
        "job_url": url_template("progress:job"),
        "cancel_url": url_template("progress:api-job-cancel"),
        "retry_url": url_template("progress:api-job-retry"),
    }


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    specs = registry.launchable()
    context = {
        "tasks": [
            {"name": s.name, "title": s.title, "description": s.description, "form": s.form()}
            for s in specs
        ],
        "task_titles": {s.name: s.title for s in specs},
        "live_urls": live_urls(),
        **_urls(),
    }
    return _page(request, "progress/dashboard.html", context)


@login_required
def job_page(request: HttpRequest, job_id: str) -> HttpResponse:
    try:
        job = reads.get_visible_job(request.user, job_id)
    except JobNotFound:
        raise Http404("No such job.") from None
    urls = _urls()
    context = {
        "job": job,
        "params": sorted(job.params.items()) if isinstance(job.params, dict) else [],
        "title": registry.title_of(job.task),
        "job_data": json.loads(reads.job_json(job)),
        # A group job's parts, each with a bar of its own.
        "parts": [json.loads(part) for part in reads.parts_of(job)],
        "parent_title": registry.title_of(job.parent.task) if job.parent else "",
        "live_urls": live_urls(),
        **urls,
        "cancel_url": urls["cancel_url"].replace("{id}", str(job.pk)),
        "retry_url": urls["retry_url"].replace("{id}", str(job.pk)),
    }
    return _page(request, "progress/job.html", context)


@login_required
def history(request: HttpRequest) -> HttpResponse:
    """Runs on GET /history/: the user's finished jobs, newest first, 25 a page, filtered by
    `?state=` and `?task=`; a value that is not one of the choices matches no job."""
    state = request.GET.get("state", "")
    task = request.GET.get("task", "")
    titles = registry.titles()
    # Lists are the user's own, staff included, as GET /api/jobs/ is; parts show in their group.
    jobs = (
        reads.visible_jobs(request.user)
        .filter(state__in=FINAL_STATES, owner_id=request.user.pk, parent__isnull=True)
        .order_by("-created", "-pk")
    )
    if state:
        jobs = jobs.filter(state=state) if state in HISTORY_STATES else jobs.none()
    if task:
        jobs = jobs.filter(task=task) if task in titles else jobs.none()
    page = Paginator(jobs, HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    filters = {key: value for key, value in (("state", state), ("task", task)) if value}
    context = {
        "page": page,
        "rows": [
            {
                "job": job,
                "title": titles.get(job.task, job.task),
                "text": job.error if job.state == State.FAILURE else job.message,
                "has_result": job.state == State.SUCCESS,
            }
            for job in page
        ],
        "state": state,
        "task": task,
        "states": [str(choice) for choice in HISTORY_STATES],
        "tasks": sorted(titles.items(), key=lambda item: item[1]),
        "filtered": bool(filters),
        # Each page link keeps the filters: "?state=FAILURE&page=".
        "page_query": "?" + urlencode({**filters, "page": ""}),
    }
    return _page(request, "progress/history.html", context)


@login_required
def download(request: HttpRequest, job_id: str) -> FileResponse:
    """A job's result file, for its owner only."""
    job = Job.objects.filter(pk=job_id, owner_id=request.user.pk).first()
    if job is None or not job.result_file:
        raise Http404("No such file.")
    return FileResponse(
        job.result_file.open("rb"),
        as_attachment=True,
        filename=os.path.basename(job.result_file.name or "result"),
    )


@login_required
def result_json(request: HttpRequest, job_id: str) -> HttpResponse:
    """Runs on GET /jobs/<id>/result.json: a finished job's result, pretty, for who may see
    the job (PROGRESS["VISIBILITY"]); 404 for a job still running."""
    try:
        job = reads.get_visible_job(request.user, job_id)
    except JobNotFound:
        raise Http404("No such job.") from None
    if not job.is_final:
        raise Http404("This job has not finished.")
    response = HttpResponse(
        json.dumps(job.result, indent=2, ensure_ascii=False), content_type="application/json"
    )
    response["X-Content-Type-Options"] = "nosniff"
    filename = get_valid_filename(f"{job.task}-{job.pk}.json")
    response["Content-Disposition"] = f'inline; filename="{filename}"'
    return response


def _page(request: HttpRequest, template: str, context: dict[str, Any]) -> HttpResponse:
    """One of the app's pages, extending PROGRESS["BASE_TEMPLATE"]."""
    context["progress_base_template"] = progress_settings.BASE_TEMPLATE
    return render(request, template, context)


def _is_api(request: HttpRequest) -> bool:
    """Whether the request is for progress's JSON API, wherever the project mounts it: by the
    view it resolved to, or, for a path that resolves to none, by the API's reversed root.
    Another app's /api/ keeps its own error pages."""
    match = getattr(request, "resolver_match", None)
    if match is not None:
        return "progress" in match.namespaces and (match.url_name or "").startswith("api-")
    try:
        root = reverse("progress:api-tasks").removesuffix("tasks/")
    except NoReverseMatch:
        return False
    return request.path.startswith(root)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """Answers JSON to API clients and Django's page to browsers."""
    if _is_api(request):
        return JsonResponse(
            {"error": "CSRF check failed: send the X-CSRFToken header."}, status=403
        )
    return django_csrf_failure(request, reason)


def page_not_found(
    request: HttpRequest,
    exception: Exception,
    template_name: str = defaults.ERROR_404_TEMPLATE_NAME,
) -> HttpResponse:
    """handler404: under /api/ the same JSON as a job the user may not see, so ids cannot be
    probed by a path the URLconf refuses (an empty id, one with a slash)."""
    if _is_api(request):
        return JsonResponse({"error": str(JobNotFound())}, status=404)
    return defaults.page_not_found(request, exception, template_name)


def server_error(
    request: HttpRequest, template_name: str = defaults.ERROR_500_TEMPLATE_NAME
) -> HttpResponse:
    """handler500: JSON to API clients, Django's plain page to browsers; never a traceback."""
    if _is_api(request):
        return JsonResponse({"error": "Internal server error; try again later."}, status=500)
    return defaults.server_error(request, template_name)


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Runs when Prometheus scrapes this process: its figures, for the bearer of
    PROGRESS["METRICS_TOKEN"] or a signed-in staff user; 404 while no token is set, or
    without prometheus_client (the [metrics] extra)."""
    token = str(progress_settings.METRICS_TOKEN)
    if not token or not process_metrics.AVAILABLE:
        raise Http404()
    if not (_bears(request, token) or request.user.is_staff):
        response = HttpResponse("Authentication required.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    body, content_type = process_metrics.exposition()
    return HttpResponse(body, content_type=content_type)


def _bears(request: HttpRequest, token: str) -> bool:
    """Whether the request's Authorization header is `Bearer <token>`."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # Constant time, so the token cannot be guessed a character at a time.
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )
