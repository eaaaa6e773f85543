"""`pip install` of this repository gives another project the `progress` app, whole: the
release's sdist and wheel build, pass `twine check`, and carry the licence and the types."""

from __future__ import annotations

import re
import shutil
import subprocess
import tarfile
import textwrap
import zipfile
from pathlib import Path

from tests.support import PYTHON, ROOT

# What a project that installs the wheel uses, beyond the Python modules.
NEEDED = [
    "progress/static/progress/client.js",
    "progress/static/progress/widget.js",
    "progress/static/progress/progress.css",
    "progress/templates/progress/bar.html",
    "progress/templates/progress/base.html",
    "progress/templatetags/progress.py",
    "progress/migrations/0001_initial.py",
    "progress/management/commands/progress.py",
]


def test_the_wheel_holds_the_app_and_works_outside_this_repository(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy(ROOT / "pyproject.toml", source)
    for name in ("LICENSE", "CHANGELOG.md", "MANIFEST.in"):
        shutil.copy(ROOT / name, source)
    (source / "docs").mkdir()
    for doc in ("package.md", "integrating.md", "protocol.md"):
        shutil.copy(ROOT / "docs" / doc, source / "docs")
    shutil.copytree(ROOT / "progress", source / "progress",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    wheels = tmp_path / "wheels"
    # As a release is made: an sdist, the wheel built from it, and twine's check of both
    # (the metadata PyPI would refuse, a description it could not render).
    subprocess.run(
        [PYTHON, "-m", "build", "--outdir", str(wheels), str(source)],
        check=True, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    checked = subprocess.run(
        [PYTHON, "-m", "twine", "check", "--strict", *map(str, wheels.iterdir())],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    [wheel] = wheels.glob("django_live_progress-*.whl")
    [sdist] = wheels.glob("django_live_progress-*.tar.gz")
    archive = zipfile.ZipFile(wheel)
    names = set(archive.namelist())
    assert set(NEEDED) <= names
    # A licence a company may use, and types for its type checker.
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    assert "progress/py.typed" in names
    metadata = next(archive.read(n) for n in names if n.endswith(".dist-info/METADATA")).decode()
    assert "License-Expression: BSD-3-Clause" in metadata
    assert "Classifier: Framework :: Django :: 6.1" in metadata
    assert "Requires-Dist: Django<6.2,>=5.2" in metadata
    # The optional parts are extras, not dependencies.
    assert 'Requires-Dist: prometheus_client>=0.20; extra == "metrics"' in metadata
    assert 'Requires-Dist: tqdm>=4.66; extra == "cli"' in metadata
    assert "Provides-Extra: server" in metadata
    with tarfile.open(sdist) as tar:
        inside = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    assert {"LICENSE", "CHANGELOG.md", "docs/integrating.md", "docs/protocol.md"} <= inside
    # The package page stands alone: no link into a repository it does not come with.
    assert "Description-Content-Type: text/markdown" in metadata
    assert not re.search(r"\]\((?!https?://|#)", metadata), "a relative link on the package page"
    assert not any(name.split("/")[0] in {"tasks_site", "workers", "statements", "tests"}
                   for name in names)  # fmt: skip

    site = tmp_path / "site"
    subprocess.run(
        [PYTHON, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        check=True, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    # Another project: its own settings, nothing of this repository on the path.
    script = textwrap.dedent("""
        import django
        from django.conf import settings
        settings.configure(
            INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes",
                            "django.contrib.staticfiles", "progress"],
            TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates",
                        "APP_DIRS": True}],
            STATIC_URL="/static/",
            PROGRESS={"REDIS_URL": "redis://127.0.0.1:1/0"},
        )
        django.setup()
        import progress
        from django.contrib.staticfiles import finders
        from django.template.loader import get_template
        from progress import launch, stages, subscribe, job_finished
        assert finders.find("progress/client.js"), "no client.js"
        get_template("progress/bar.html"), get_template("progress/base.html")
        print(progress.__file__)
    """)
    done = subprocess.run(
        [PYTHON, "-c", script], cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": "/usr/bin"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith(str(site))
