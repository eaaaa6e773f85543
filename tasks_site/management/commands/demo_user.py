"""Creates the demo/demo user when DEBUG is on, for `make run`."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the user demo with password demo (only when DEBUG is on)."

    def handle(self, *args: Any, **options: Any) -> None:
        """Runs once per `make run`; leaves an existing demo user as it is."""
        if not settings.DEBUG:
            self.stdout.write("DEBUG is off: no demo user created.")
            return
        user_model = get_user_model()
        user, created = user_model.objects.get_or_create(username="demo")
        if created:
            user.set_password("demo")
            user.save()
        self.stdout.write(self.style.SUCCESS("Log in as demo / demo (DEBUG is on)."))
