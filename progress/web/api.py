"""The contract's JSON API: tasks, jobs, cancel, retry, event streams. Web processes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from functools import wraps
from inspect import iscoroutinefunction
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase

from progress.conf import progress_settings
from progress.core import commands, reads, registry
from progress.exceptions import (
    InvalidParams,
    JobNotFound,
    NotRetryable,
    TooManyJobs,
    TooManyLaunches,
    UnknownTask,
)
from progress.protocol.frames import FrameError, parse_held
from progress.web.sse import UserStream, job_events

View = Callable[..., HttpResponse]

_LAUNCH_KEYS = {"task", "params"}


class BadRequest(Exception):
    """A request body the API cannot read."""


def _error(status: int, message: str, fields: dict[str, list[str]] | None = None) -> JsonResponse:
    body: dict[str, Any] = {"error": message}
    if fields is not None:
        body["fields"] = fields
    return JsonResponse(body, status=status)


def _raw_json(text: str, status: int = 200) -> HttpResponse:
    """A response from JSON encoded once already, by the publisher or the store."""
    return HttpResponse(text, status=status, content_type="application/json")


def allow(*methods: str) -> Callable[[Any], Any]:
    """Django's require_http_methods, answering JSON like the rest of the API."""

    def refuse(request: HttpRequest) -> HttpResponse:
        response = _error(405, f"Method not allowed; use {', '.join(methods)}.")
        response["Allow"] = ", ".join(methods)
        return response

    def decorator(view: Any) -> Any:
        if iscoroutinefunction(view):

            @wraps(view)
            async def async_wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                if request.method not in methods:
                    return refuse(request)
                return await view(request, *args, **kwargs)

            return async_wrapped

        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            if request.method not in methods:
                return refuse(request)
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def api_login_required(view: View) -> View:
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return _error(401, "Authentication required.")
        return view(request, *args, **kwargs)

    return wrapped


def _read_object(request: HttpRequest) -> dict[str, Any]:
    limit = progress_settings.MAX_BODY_BYTES
    try:
        length = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        raise BadRequest("Bad Content-Length.") from None
    if length > limit:
        raise BadRequest(f"The body is over {limit} bytes.")
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, RecursionError):
        raise BadRequest("The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object.")
    return body


@allow("GET")
@api_login_required
def tasks(request: HttpRequest) -> HttpResponse:
    return JsonResponse(
        {
            "tasks": [
                {
                    "name": spec.name,
                    "title": spec.title,
                    "description": spec.description,
                    "params": spec.params_schema(),
                }
                for spec in registry.launchable()
            ]
        }
    )


@allow("GET", "POST")
@api_login_required
def jobs(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _raw_json('{"jobs":[' + ",".join(reads.list_jobs(request.user)) + "]}")
    try:
        body = _read_object(request)
    except BadRequest as exc:
        return _error(400, str(exc))
    unknown = sorted(set(body) - _LAUNCH_KEYS)
    if unknown:
        return _error(400, "Unknown fields.", {key: ["Unknown field."] for key in unknown})
    try:
        job = commands.launch_params(request.user, body.get("task"), body.get("params"))
    except UnknownTask as exc:
        return _error(400, str(exc), {"task": ["Not a task you can launch."]})
    except InvalidParams as exc:
        return _error(400, str(exc), exc.fields)
    except (TooManyJobs, TooManyLaunches) as exc:
        return _too_many(exc)
    return _raw_json(reads.job_json(job), status=201)


def _too_many(exc: TooManyJobs | TooManyLaunches) -> JsonResponse:
    """The 429 of a launch over a per-user limit, with Retry-After for the rate limit."""
    response = _error(429, str(exc))
    if isinstance(exc, TooManyLaunches):
        response["Retry-After"] = str(exc.retry_after)
    return response


@allow("GET")
@api_login_required
def job_detail(request: HttpRequest, job_id: str) -> HttpResponse:
    try:
        job = reads.get_visible_job(request.user, job_id)
    except JobNotFound as exc:
        return _error(404, str(exc))
    return _raw_json(reads.job_json(job))


@allow("POST")
@api_login_required
def job_cancel(request: HttpRequest, job_id: str) -> HttpResponse:
    try:
        job = commands.cancel(request.user, job_id)
    except JobNotFound as exc:
        return _error(404, str(exc))
    return _raw_json(reads.job_json(job), status=202)


@allow("POST")
@api_login_required
def job_retry(request: HttpRequest, job_id: str) -> HttpResponse:
    try:
        job = commands.retry(request.user, job_id)
    except JobNotFound as exc:
        return _error(404, str(exc))
    except NotRetryable as exc:
        # A code, as the socket's errors have, since clients tell this refusal apart.
        return JsonResponse({"error": "not_retryable", "detail": str(exc)}, status=409)
    except (TooManyJobs, TooManyLaunches) as exc:
        return _too_many(exc)
    return _raw_json(reads.job_json(job), status=201)


@allow("GET")
async def job_event_stream(request: HttpRequest, job_id: str) -> HttpResponseBase:
    user = await request.auser()
    if not user.is_authenticated:
        return _error(401, "Authentication required.")
    try:
        job = await reads.aget_visible_job(user, job_id)
    except JobNotFound as exc:
        return _error(404, str(exc))
    return _event_stream(job_events(job, request.headers.get("Last-Event-ID")))


@allow("GET")
async def user_event_stream(request: HttpRequest) -> HttpResponseBase:
    """Runs for GET /api/events/: the socket's frames over SSE, for pages whose proxy drops
    WebSocket upgrades (an addition to the contract)."""
    user = await request.auser()
    if not user.is_authenticated or user.pk is None:
        return _error(401, "Authentication required.")
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    try:
        held = parse_held(request.META.get("QUERY_STRING", ""))
    except FrameError as exc:
        return _error(400, exc.detail)
    return _event_stream(UserStream(int(user.pk), session_key, held).events())


def _event_stream(events: AsyncIterator[str]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(events, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    # Tells nginx not to buffer the stream.
    response["X-Accel-Buffering"] = "no"
    return response
