"""The version matrix: the unit and integration tiers on each supported Python and Django.

Run from a terminal through `make test-matrix` (which puts pyenv's interpreters on PATH), or
`.venv/bin/nox -s "tests(python='3.13', django='6.1')"` for one cell. Each cell installs
requirements/test.txt and then its own Django over the pin there.
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

# Each supported series at the release tested; pyproject.toml admits the series.
DJANGO = {"5.2": "5.2.19", "6.0": "6.0.10", "6.1": "6.1.3"}
# Django 6 needs Python 3.12. Python 3.11 with Django 5.2 (requirements/base.txt's pins)
# is .venv's, on which make test runs every tier.
CELLS = [
    ("3.12", "5.2"),
    ("3.12", "6.0"),
    ("3.12", "6.1"),
    ("3.13", "5.2"),
    ("3.13", "6.0"),
    ("3.13", "6.1"),
]


@nox.session
@nox.parametrize(["python", "django"], CELLS, ids=[f"py{p}-django{d}" for p, d in CELLS])
def tests(session: nox.Session, django: str) -> None:
    """The unit tier, then the integration tier (a private Redis), on one Python and Django."""
    session.install("--disable-pip-version-check", "-q", "-r", "requirements/test.txt")
    session.install("--disable-pip-version-check", "-q", f"Django=={DJANGO[django]}")
    session.run("python", "-m", "pip", "check")
    session.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/unit",
                "--ds=tests.unit.settings")  # fmt: skip
    session.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/integration")
