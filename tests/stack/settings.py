"""Settings of the stacks the tests start: the project's own, plus test tasks and knobs.

The knobs come from the environment, so that one test can start a worker or a
web process tuned for its fault: TEST_PROGRESS (JSON merged into PROGRESS) and
TEST_LAYER (JSON merged into the channel layer's CONFIG).
"""

from __future__ import annotations

import json
import os

from tasks_site.settings import *  # noqa: F403
from tasks_site.settings import CHANNEL_LAYERS, INSTALLED_APPS, PROGRESS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.stack"]
# Logging in a hundred users for a reconnect storm should not take a minute.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
PROGRESS = {**PROGRESS, **json.loads(os.environ.get("TEST_PROGRESS", "{}"))}
# A dict, though mypy types it Collection[str]: the join of BACKEND's str and CONFIG's dict.
layer_config = CHANNEL_LAYERS["default"]["CONFIG"]
assert isinstance(layer_config, dict)
layer_config.update(json.loads(os.environ.get("TEST_LAYER", "{}")))
