"""What the statements app does when progress says a job finished."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.dispatch import receiver
from django.urls import reverse

from progress import State, job_finished

from .models import Notification, Statement

logger = logging.getLogger(__name__)

TASK = "statements.build"


@receiver(job_finished)
def statement_finished(task: str, owner_id: int, state: dict[str, Any], **kwargs: Any) -> None:
    """Runs in the process that ended the job (the worker, for SUCCESS and FAILURE)."""
    if task != TASK:
        return
    statement = Statement.objects.filter(job_id=state["id"]).first()
    month = statement.month if statement else "?"
    if state["state"] == State.SUCCESS:
        text = f"Your statement for {month} is ready."
    else:
        text = f"Your statement for {month} could not be built ({state['state'].lower()})."
    Notification.objects.create(user_id=owner_id, text=text, link=reverse("statements:index"))
    user = get_user_model()._default_manager.filter(pk=owner_id).first()
    if user is not None and user.email:
        send_mail("Statement " + month, text, None, [user.email])
