"""The optional parts without their extras: prometheus_client ([metrics]), tqdm ([cli]) and
uvicorn ([server]) blocked from import in a process of their own, as if not installed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from tests.support import ROOT

# Makes the three packages impossible to import in the process it starts: Python's import
# system treats a None in sys.modules as a module that is not installed.
BLOCK = textwrap.dedent("""
    import sys
    for name in ("prometheus_client", "tqdm", "uvicorn"):
        sys.modules[name] = None
""")


def run(script: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.unit.settings", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", BLOCK + textwrap.dedent(script)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_without_prometheus_client_metrics_count_nothing_and_the_endpoint_is_off() -> None:
    done = run("""
        import django
        django.setup()
        from django.core.checks import run_checks
        from django.test import Client, override_settings
        from progress.core import metrics
        assert not metrics.AVAILABLE
        metrics.PUBLISHED_JOB.inc()
        metrics.OPEN_SOCKETS.dec()
        metrics.PUBLISH_TO_SEND.observe(0.2)
        token = {"REDIS_URL": "redis://127.0.0.1:1/0", "METRICS_TOKEN": "t"}
        with override_settings(PROGRESS=token):
            assert "progress.W011" in {m.id for m in run_checks(databases=[])}
            response = Client().get("/progress/metrics/", HTTP_AUTHORIZATION="Bearer t")
            assert response.status_code == 404, response.status_code
        print("ok")
    """)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_without_tqdm_the_watch_prints_a_line_per_state() -> None:
    done = run("""
        import django
        django.setup()
        from progress.management.commands.progress import _bar
        view = _bar("Count")
        view.show({"state": "PROGRESS", "current": 3, "total": 10, "percent": 30.0,
                   "message": "step 3 of 10"})
        view.close()
    """)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "Count: PROGRESS 3/10 (30%) step 3 of 10"


def test_without_uvicorn_the_server_says_what_to_install() -> None:
    done = run("""
        import runpy
        runpy.run_module("progress.server", run_name="__main__")
    """)
    assert done.returncode == 1
    assert "pip install 'django-live-progress[server]'" in done.stderr
    assert "Traceback" not in done.stderr
