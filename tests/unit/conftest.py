"""Fixtures of the unit tier: users and jobs in an in-memory database, nothing else running."""

from __future__ import annotations

# Fixtures, by name: they take the place of the root conftest's logged-in clients.
from tests.helpers.rows import alice, bob, job, staff

__all__ = ["alice", "bob", "job", "staff"]
