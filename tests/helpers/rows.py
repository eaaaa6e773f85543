"""Fixtures of users and a job as database rows, for the unit and integration tiers."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from progress.models import Job


@pytest.fixture
def alice(django_user_model: type[User]) -> User:
    return django_user_model.objects.create_user("alice", password="pw")


@pytest.fixture
def bob(django_user_model: type[User]) -> User:
    return django_user_model.objects.create_user("bob", password="pw")


@pytest.fixture
def staff(django_user_model: type[User]) -> User:
    return django_user_model.objects.create_user("staff", password="pw", is_staff=True)


@pytest.fixture
def job(alice: User) -> Job:
    return Job.objects.create(owner=alice, task="demo.count", params={"steps": 10})
