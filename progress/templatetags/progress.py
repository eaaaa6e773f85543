"""`{% progress_bar job %}`: a live bar that wires itself up. Web processes."""

from __future__ import annotations

from typing import Any

from django import template
from django.urls import NoReverseMatch, reverse

from progress.core import reads, registry
from progress.exceptions import JobNotFound
from progress.models import Job
from progress.web.views import WS_PATH, live_urls, url_template

register = template.Library()


@register.inclusion_tag("progress/bar.html", takes_context=True)
def progress_bar(context: template.Context, job: Job | str, cancel: bool = True) -> dict[str, Any]:
    """Renders when a template says `{% progress_bar job %}` (a Job, or a job id).

    The bar shows only a job the page's user may see (PROGRESS["VISIBILITY"]);
    its state is drawn at once, then kept live by progress/widget.js over the
    page's one WebSocket. `cancel=False` hides the Cancel button.
    """
    request = context.get("request")
    user = getattr(request, "user", None) or context.get("user")
    try:
        if user is None:
            raise JobNotFound()
        found = reads.get_visible_job(user, job.pk if isinstance(job, Job) else job)
    except JobNotFound:
        return {"missing": True}
    state = reads.state_of(found)
    return {
        "missing": False,
        "job_id": str(found.pk),
        "state": state,
        "title": registry.title_of(found.task),
        "percent": state["percent"] if state["percent"] is not None else "",
        "ws_url": WS_PATH,
        "live_urls": live_urls(),
        "job_url": url_template("progress:job"),
        "cancel_url": url_template("progress:api-job-cancel") if cancel else "",
        "initial_id": f"progress-initial-{found.pk}",
    }


@register.inclusion_tag("progress/tray.html", takes_context=True)
def progress_tray(context: template.Context) -> dict[str, Any]:
    """Renders where a base template says `{% progress_tray %}`: the signed-in user's jobs,
    live on every page, with a notice when one ends. Nothing for anonymous visitors."""
    request = context.get("request")
    user = getattr(request, "user", None) or context.get("user")
    if user is None or not user.is_authenticated:
        return {"show": False}
    try:
        history_url = reverse("progress:history")
    except NoReverseMatch:
        history_url = ""
    return {
        "show": True,
        "live_urls": live_urls(),
        "job_url": url_template("progress:job"),
        "dashboard_url": reverse("progress:dashboard"),
        "history_url": history_url,
        "titles": registry.titles(),
    }
