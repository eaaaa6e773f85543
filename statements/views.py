"""The statements page, and a long-poll endpoint that waits for a statement's job to end."""

from __future__ import annotations

from contextlib import aclosing

from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from progress import InvalidParams, JobNotFound, ProgressError, launch, subscribe

from .models import Notification, Statement
from .tasks import StatementForm


def _owner_id(request: HttpRequest) -> int:
    """The signed-in user's id; login_required has turned everyone else away."""
    assert request.user.pk is not None
    return int(request.user.pk)


@login_required
@require_http_methods(["GET", "POST"])
def index(request: HttpRequest) -> HttpResponse:
    """The user's statements with live bars; a POST requests a new one."""
    form = StatementForm(initial={"month": timezone.now().strftime("%Y-%m")})
    error = ""
    if request.method == "POST":
        form = StatementForm(request.POST)
        if form.is_valid():
            try:
                with transaction.atomic():
                    # launch() queues the task once this transaction commits.
                    job = launch(request.user, "statements.build", **form.cleaned_data)
                    Statement.objects.create(
                        owner_id=_owner_id(request), month=form.cleaned_data["month"], job=job
                    )
            except InvalidParams as exc:
                error = "; ".join(" ".join(messages) for messages in exc.fields.values())
            except ProgressError as exc:
                error = str(exc)
            else:
                return redirect("statements:index")
    context = {
        "form": form,
        "error": error,
        "statements": Statement.objects.filter(owner_id=_owner_id(request)).select_related("job")[
            :20
        ],
        "notices": Notification.objects.filter(user_id=_owner_id(request))[:10],
    }
    return render(request, "statements/index.html", context, status=400 if error else 200)


@require_GET
async def wait(request: HttpRequest, pk: int) -> JsonResponse:
    """Answers once the statement's job has ended: `progress.subscribe()` in an async view."""
    user = await request.auser()
    if not user.is_authenticated:
        return JsonResponse({"error": "Log in first."}, status=401)
    statement = await Statement.objects.filter(pk=pk, owner_id=user.pk).afirst()
    if statement is None or statement.job_id is None:
        return JsonResponse({"error": "No such statement."}, status=404)
    last = None
    try:
        async with aclosing(subscribe(statement.job_id, user=user)) as states:
            async for state in states:
                last = state
    except JobNotFound:
        return JsonResponse({"error": "No such statement."}, status=404)
    assert last is not None
    return JsonResponse({"state": last["state"], "result": last["result"]})
