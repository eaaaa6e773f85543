"""Admin for jobs, read-only since states come from the workers. Web processes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin
from django.http import HttpRequest

from progress.models import Job

# Generic for type checkers only: Django's ModelAdmin takes no type argument at run time.
if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[Job]
else:
    _ModelAdmin = admin.ModelAdmin


@admin.register(Job)
class JobAdmin(_ModelAdmin):
    list_display = ("id", "task", "owner", "state", "current", "total", "created", "finished")
    list_filter = ("state", "task")
    search_fields = ("id", "task", "owner__username")
    date_hierarchy = "created"
    readonly_fields = [f.name for f in Job._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
