"""{% progress_bar job %}: a bar drawn from the job's state, only for a user who may see it."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.template import Context, Template
from django.test import RequestFactory

from progress.core import machine
from progress.models import Job
from progress.protocol.states import State
from tests.helpers.inprocess import state_of

pytestmark = pytest.mark.django_db


def render(
    user: User | AnonymousUser,
    source: str = "{% load progress %}{% progress_bar job %}",
    **context: object,
) -> str:
    request = RequestFactory().get("/")
    request.user = user
    return Template(source).render(Context({"request": request, **context}))


def test_the_owner_gets_a_bar_with_the_jobs_state_and_its_wiring(alice: User, job: Job) -> None:
    progress = state_of(job, State.PROGRESS, 4)
    progress.message = "<b>step</b> 4"
    machine.commit_state(progress)
    html = render(alice, job=job)
    assert f'data-job-id="{job.pk}"' in html
    assert 'data-ws-url="/ws/progress/"' in html and 'data-state="PROGRESS"' in html
    assert re.search(r'<progress max="100" value="40(\.0)?"', html)
    assert "progress/widget.js" in html
    # Job data is escaped in the markup and in the embedded JSON alike.
    assert "<b>step</b>" not in html and "&lt;b&gt;step&lt;/b&gt; 4" in html
    embedded = re.search(
        r'<script id="progress-initial-[^"]+" type="application/json">(.*?)</script>', html, re.S
    )
    assert embedded and json.loads(embedded.group(1))["current"] == 4


def test_a_job_id_works_as_well_as_a_job(alice: User, job: Job) -> None:
    assert f'data-job-id="{job.pk}"' in render(alice, job=str(job.pk))


def test_another_user_or_nobody_gets_no_bar_and_no_data(bob: User, job: Job) -> None:
    for user in (bob, AnonymousUser()):
        html = render(user, job=job)
        assert "No such job." in html and str(job.pk) not in html


def test_cancel_false_hides_the_cancel_button(alice: User, job: Job) -> None:
    html = render(alice, "{% load progress %}{% progress_bar job cancel=False %}", job=job)
    assert 'data-cancel-url=""' in html
