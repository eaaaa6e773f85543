"""Who may see whose jobs: the rules PROGRESS["VISIBILITY"] can name. Any process.

A rule is a function `(user, jobs) -> jobs`: given a logged-in user and a
QuerySet of every job, it returns the ones the user may see, cancel and watch.
Point PROGRESS["VISIBILITY"] at your own ("myapp.rules.same_team") to widen or
narrow it; every route, socket action and iterator that takes a user goes
through it. A user always sees their own jobs in their list and sockets.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from django.db.models import QuerySet
from django.utils.module_loading import import_string

from progress.conf import progress_settings
from progress.models import Job

Rule = Callable[[Any, QuerySet[Job]], QuerySet[Job]]


def own_or_staff(user: Any, jobs: QuerySet[Job]) -> QuerySet[Job]:
    """The default: users see their own jobs, staff see every job."""
    if getattr(user, "is_staff", False):
        return jobs
    return jobs.filter(owner_id=user.pk)


def own_only(user: Any, jobs: QuerySet[Job]) -> QuerySet[Job]:
    """Everyone, staff included, sees only their own jobs."""
    return jobs.filter(owner_id=user.pk)


def superuser_or_own(user: Any, jobs: QuerySet[Job]) -> QuerySet[Job]:
    """Superusers see every job; everyone else, staff included, their own."""
    if getattr(user, "is_superuser", False):
        return jobs
    return jobs.filter(owner_id=user.pk)


@cache
def _load(path: str) -> Rule:
    rule: Rule = import_string(path)
    return rule


def visibility() -> Rule:
    """The rule PROGRESS["VISIBILITY"] names; the system check progress.E006 vets it."""
    return _load(str(progress_settings.VISIBILITY))
