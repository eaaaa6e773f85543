"""The history page of finished jobs, and a finished job's result as JSON."""

from __future__ import annotations

import json
import os
import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings
from django.utils import timezone

from progress.models import Job
from progress.protocol.states import State

pytestmark = pytest.mark.django_db

ROW = re.compile(r'<tr data-job-id="([0-9a-f-]+)" data-state="([A-Z]+)">')


def finished(
    owner: User, state: State = State.SUCCESS, task: str = "demo.count", **fields: Any
) -> Job:
    """A job of `owner` that ended in `state`, created a moment after the previous one."""
    created = timezone.now() + timedelta(seconds=Job.objects.count())
    defaults: dict[str, Any] = {
        "result": {"counted": 3} if state is State.SUCCESS else None,
        "error": "Failed at step 2." if state is State.FAILURE else "",
        "message": "step 3 of 3",
        "finished": created + timedelta(seconds=1),
    }
    return Job.objects.create(
        owner=owner, task=task, state=state, created=created, **{**defaults, **fields}
    )


def rows(client: Client, query: str = "") -> list[tuple[str, str]]:
    """The (job id, state) of each row the history page lists."""
    response = client.get(f"/history/{query}")
    assert response.status_code == 200
    return ROW.findall(response.content.decode())


def next_link(client: Client, query: str = "") -> str:
    found = re.search(
        r'<a href="([^"]*)" rel="next">', client.get(f"/history/{query}").content.decode()
    )
    assert found, "no link to the next page"
    return found.group(1).replace("&amp;", "&")


@pytest.fixture
def client_of(alice: User) -> Client:
    client = Client()
    client.force_login(alice)
    return client


# The list.


def test_thirty_finished_jobs_make_a_page_of_25_newest_first_and_one_of_5(
    client_of: Client, alice: User
) -> None:
    jobs = [finished(alice) for _ in range(30)]
    first = rows(client_of)
    assert [job_id for job_id, _ in first] == [str(job.pk) for job in reversed(jobs)][:25]
    link = next_link(client_of)
    assert link == "?page=2"
    second = rows(client_of, link)
    assert [job_id for job_id, _ in second] == [str(job.pk) for job in reversed(jobs[:5])]
    # A page past the last shows the last; a page that is not a number, the first.
    assert rows(client_of, "?page=99") == second
    assert rows(client_of, "?page=abc") == first


def test_page_links_keep_the_filters(client_of: Client, alice: User) -> None:
    for _ in range(30):
        finished(alice, State.FAILURE)
    finished(alice, State.SUCCESS)
    link = next_link(client_of, "?state=FAILURE&task=demo.count")
    assert link == "?state=FAILURE&task=demo.count&page=2"
    assert len(rows(client_of, link)) == 5
    page = client_of.get(f"/history/{link}").content.decode()
    assert '<a href="?state=FAILURE&amp;task=demo.count&amp;page=1" rel="prev">' in page


def test_the_state_filter_lists_only_jobs_in_that_state(client_of: Client, alice: User) -> None:
    failed = finished(alice, State.FAILURE)
    revoked = finished(alice, State.REVOKED)
    done = finished(alice, State.SUCCESS)
    assert rows(client_of, "?state=FAILURE") == [(str(failed.pk), "FAILURE")]
    assert rows(client_of, "?state=REVOKED") == [(str(revoked.pk), "REVOKED")]
    assert rows(client_of, "?state=SUCCESS") == [(str(done.pk), "SUCCESS")]
    assert len(rows(client_of)) == 3
    # The form shows the filter it applied.
    page = client_of.get("/history/?state=FAILURE").content.decode()
    assert '<option value="FAILURE" selected>' in page


def test_the_task_filter_lists_only_that_tasks_jobs(client_of: Client, alice: User) -> None:
    count = finished(alice, task="demo.count")
    report = finished(alice, task="reports.sales_csv")
    assert rows(client_of, "?task=demo.count") == [(str(count.pk), "SUCCESS")]
    assert rows(client_of, "?task=reports.sales_csv") == [(str(report.pk), "SUCCESS")]
    assert rows(client_of, "?task=demo.count&state=FAILURE") == []


@pytest.mark.parametrize(
    "query",
    [
        "?state=BOGUS",
        "?state=PENDING",
        "?state=success",
        "?task=nope",
        "?task=%00",
        "?state=" + "X" * 5000,
    ],
)
def test_a_filter_value_that_is_not_a_choice_lists_nothing(
    client_of: Client, alice: User, query: str
) -> None:
    finished(alice, State.FAILURE)
    assert rows(client_of, query) == []
    assert (
        "No finished jobs match these filters."
        in client_of.get(f"/history/{query}").content.decode()
    )


def test_other_users_jobs_are_never_listed(
    client_of: Client, alice: User, bob: User, staff: User
) -> None:
    mine = finished(alice)
    finished(bob)
    finished(bob, State.FAILURE)
    assert rows(client_of) == [(str(mine.pk), "SUCCESS")]
    assert rows(client_of, "?state=FAILURE") == []
    # Staff may open anyone's job, but their history is their own, as their job list is.
    staff_client = Client()
    staff_client.force_login(staff)
    assert rows(staff_client) == []


def test_unfinished_jobs_and_parts_of_groups_are_not_listed(client_of: Client, alice: User) -> None:
    for state in (State.PENDING, State.STARTED, State.PROGRESS, State.RETRY):
        Job.objects.create(owner=alice, task="demo.count", state=state)
    group = finished(alice)
    finished(alice, parent=group, part=1)
    assert rows(client_of) == [(str(group.pk), "SUCCESS")]


def test_a_row_shows_what_the_user_needs(client_of: Client, alice: User) -> None:
    report = finished(alice, task="reports.sales_csv", result_file="progress/sales.csv")
    failed = finished(alice, State.FAILURE)
    page = client_of.get("/history/").content.decode()
    assert "Sales report (CSV)" in page and "Count" in page
    assert "Failed at step 2." in page
    assert f'href="/jobs/{report.pk}/"' in page and f'href="/jobs/{failed.pk}/"' in page
    assert f'href="/jobs/{report.pk}/download/"' in page
    assert f'href="/jobs/{report.pk}/result.json"' in page
    # A failed job has no result to open, nor a file.
    assert f"/jobs/{failed.pk}/result.json" not in page
    assert f"/jobs/{failed.pk}/download/" not in page


def test_job_text_is_escaped(client_of: Client, alice: User) -> None:
    finished(alice, State.FAILURE, error="<img src=x onerror=alert(1)>")
    page = client_of.get("/history/").content.decode()
    assert "<img src=x" not in page and "&lt;img src=x" in page


def test_no_history_yet_says_so(client_of: Client) -> None:
    assert "No finished jobs yet." in client_of.get("/history/").content.decode()


def test_the_history_needs_a_login_and_is_linked_from_every_page(client_of: Client) -> None:
    response = Client().get("/history/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    page = client_of.get("/").content.decode()
    nav = page.split('<nav class="site-nav"', 1)[1].split("</nav>", 1)[0]
    assert '<a href="/history/">History</a>' in nav
    # The tray's panel links to it too.
    tray = page.split("data-progress-tray", 1)[1]
    assert '<a href="/history/">History</a>' in tray


# The result as JSON.


def test_the_owner_gets_the_result_as_pretty_json_inline(client_of: Client, alice: User) -> None:
    job = finished(alice, result={"city": "Zürich", "rows": [1, 2]})
    response = client_of.get(f"/jobs/{job.pk}/result.json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Disposition"] == f'inline; filename="demo.count-{job.pk}.json"'
    text = response.content.decode()
    assert '"city": "Zürich"' in text and "\n  " in text
    assert json.loads(text) == {"city": "Zürich", "rows": [1, 2]}


def test_a_failed_jobs_result_is_null(client_of: Client, alice: User) -> None:
    job = finished(alice, State.FAILURE)
    response = client_of.get(f"/jobs/{job.pk}/result.json")
    assert response.status_code == 200 and json.loads(response.content) is None


def test_the_result_of_another_users_job_is_404(client_of: Client, bob: User, staff: User) -> None:
    theirs = finished(bob)
    assert client_of.get(f"/jobs/{theirs.pk}/result.json").status_code == 404
    assert (
        client_of.get("/jobs/00000000-0000-0000-0000-000000000000/result.json").status_code == 404
    )
    staff_client = Client()
    staff_client.force_login(staff)
    # Staff see what PROGRESS["VISIBILITY"] shows them: by default every job, with own_only none.
    assert staff_client.get(f"/jobs/{theirs.pk}/result.json").status_code == 200
    own_only = {"REDIS_URL": os.environ["REDIS_URL"], "VISIBILITY": "progress.permissions.own_only"}
    with override_settings(PROGRESS=own_only):
        assert staff_client.get(f"/jobs/{theirs.pk}/result.json").status_code == 404


def test_the_result_of_an_unfinished_job_is_404(client_of: Client, alice: User) -> None:
    job = Job.objects.create(owner=alice, task="demo.count", state=State.PROGRESS)
    assert client_of.get(f"/jobs/{job.pk}/result.json").status_code == 404


def test_the_result_needs_a_login(alice: User) -> None:
    job = finished(alice)
    response = Client().get(f"/jobs/{job.pk}/result.json")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
