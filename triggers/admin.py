"""The Django admin of the database storage backend (when ``django.contrib.admin`` is installed).

Sessions, with their instances counted by status, searchable by uid and
filtered by what needs attention (a failed instance, an unresolved one, one
stuck in ``scheduled`` or ``running``) and by when they last changed;
instances across sessions, filtered by status, task, log level and error
type, each shown with its error, its traceback and its values decoded.
Expired sessions are not shown (they read as absent everywhere).

Stored state is read-only here: nothing can be added, edited or deleted.
What changes a session are the instance list's actions
(:mod:`triggers.admin_actions`), each through the session's manager.

:func:`register` puts both on another admin site, for another database
alias; this module registers them on ``django.contrib.admin.site`` for
the alias the routers give :class:`~triggers.models.Session`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.apps import apps
from django.contrib import admin
from django.contrib.admin.utils import flatten_fieldsets
from django.contrib.auth import get_permission_codename
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from .admin_actions import ACTIONS
from .admin_display import (
    decoded,
    error_line,
    instance_metadata,
    level_name,
    preformatted,
    session_metadata,
    traceback_text,
    without_traceback,
)
from .admin_filters import (
    ErrorTypeFilter,
    HasFailedFilter,
    HasUnresolvedFilter,
    LogLevelFilter,
    StatusFilter,
    StuckFilter,
    TaskFilter,
)
from .models import Instance, Session
from .operations.terminal import printable
from .storages.database.backend import database_alias
from .storages.database.queries import find_instances, live_sessions, with_counts

__all__ = ["InstanceAdmin", "SessionAdmin", "register"]


# ----------------------------------------------------------------- the admins
class _ReadOnlyAdmin(admin.ModelAdmin):
    """Shows stored rows, never changes them: no add, no edit, no delete.

    ``using`` is the database alias (None: what the routers say for a session).
    The actions need the ``operate`` permission: the model's change permission.
    """

    using: str | None = None
    view_on_site = False

    @property
    def alias(self) -> str:
        return database_alias(self.using)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_operate_permission(self, request: HttpRequest) -> bool:
        opts = self.opts
        codename = get_permission_codename("change", opts)
        return bool(request.user.has_perm(f"{opts.app_label}.{codename}"))

    def link(self, model_name: str, text: Any, pk: Any = None, **params: Any) -> SafeString:
        """A link to a list of this site (filtered by ``params``), or to a row's page."""
        if pk is None:
            url = reverse(f"{self.admin_site.name}:triggers_{model_name}_changelist")
            url += "?" + urlencode(params) if params else ""
        else:
            url = reverse(f"{self.admin_site.name}:triggers_{model_name}_change", args=[pk])
        return format_html('<a href="{}">{}</a>', url, text)


class SessionAdmin(_ReadOnlyAdmin):
    list_display = (
        "uid_text",
        "instances",
        "failed",
        "unresolved",
        "running",
        "modified",
        "expires",
    )
    list_display_links = ("uid_text",)
    list_filter = (HasFailedFilter, HasUnresolvedFilter, StuckFilter, "modified")
    search_fields = ("uid",)
    ordering = ("-modified", "uid")
    actions = ()
    fieldsets = (
        (None, {"fields": ("uid_text", "instances", "counts", "created", "modified")}),
        ("Lifetime and lock", {"fields": ("expires", "lifetime", "lock", "revision")}),
        ("Tasks", {"fields": ("tasks",)}),
        ("Metadata", {"fields": ("metadata_value",)}),
    )

    readonly_fields = flatten_fieldsets(fieldsets)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Session]:
        return with_counts(live_sessions(self.alias))

    @admin.display(description="uid", ordering="uid")
    def uid_text(self, session: Session) -> str:
        return printable(session.uid)

    @admin.display(description="instances", ordering="instance_count")
    def instances(self, session: Session) -> SafeString:
        count = session.instance_count
        text = f"{count} instance" if count == 1 else f"{count} instances"
        return self.link("instance", text, session__id__exact=session.pk)

    @admin.display(description="failed", ordering="failed_count")
    def failed(self, session: Session) -> Any:
        count = session.failed_count
        if not count:
            return count
        return self.link("instance", count, session__id__exact=session.pk, status="failed")

    @admin.display(description="unresolved", ordering="unresolved_count")
    def unresolved(self, session: Session) -> int:
        return int(session.unresolved_count)

    @admin.display(description="scheduled or running", ordering="running_count")
    def running(self, session: Session) -> int:
        return int(session.running_count)

    @admin.display(description="lock")
    def lock(self, session: Session) -> str:
        if not session.lock_token:
            return "free"
        if session.lock_expires is None:
            return "held"
        if session.lock_expires <= timezone.now():
            return "free (lapsed)"
        return f"held until {session.lock_expires.isoformat()}"

    @admin.display(description="counts")
    def counts(self, session: Session) -> str:
        rows = Instance.objects.using(self.alias).filter(session=session)
        statuses = rows.order_by("status").values_list("status", flat=True)
        found: dict[str, int] = {}
        for status in statuses:
            found[status] = found.get(status, 0) + 1
        return ", ".join(f"{status}: {n}" for status, n in found.items()) or "no instances"

    @admin.display(description="tasks")
    def tasks(self, session: Session) -> SafeString:
        if session.configuration is None:
            return format_html("{}", "none")
        rows = session.configuration.tasks.order_by("name")
        return format_html_join(
            "\n",
            "<div><code>{}</code> ({})</div>",
            ((printable(t.name), printable(t.runner) or "default runner") for t in rows),
        )

    @admin.display(description="metadata")
    def metadata_value(self, session: Session) -> SafeString:
        return preformatted(session_metadata(session))


class InstanceAdmin(_ReadOnlyAdmin):
    list_display = (
        "name_text",
        "session_link",
        "task_text",
        "status",
        "level",
        "error_type_text",
        "error",
        "modified",
    )
    list_display_links = ("name_text",)
    list_filter = (
        StatusFilter,
        TaskFilter,
        LogLevelFilter,
        ErrorTypeFilter,
        StuckFilter,
        "logs_resolved",
        "modified",
    )
    list_select_related = ("session",)
    search_fields = ("session__uid", "name")
    ordering = ("-modified", "name")
    actions = ACTIONS
    fieldsets = (
        (None, {"fields": ("session_link", "name_text", "task_text", "status", "status_since")}),
        ("Error", {"fields": ("error_type_text", "error", "traceback")}),
        ("Logs", {"fields": ("level", "logs_resolved")}),
        ("Values", {"fields": ("kwargs_value", "metadata_value", "abandon_state")}),
        ("Times", {"fields": ("created", "modified")}),
    )

    readonly_fields = flatten_fieldsets(fieldsets)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Instance]:
        return find_instances(self.alias)

    @admin.display(description="name", ordering="name")
    def name_text(self, instance: Instance) -> str:
        return printable(instance.name)

    @admin.display(description="task", ordering="task")
    def task_text(self, instance: Instance) -> str:
        return printable(instance.task)

    @admin.display(description="session", ordering="session__uid")
    def session_link(self, instance: Instance) -> SafeString:
        return self.link("session", printable(instance.session.uid), pk=instance.session_id)

    @admin.display(description="log level", ordering="log_level")
    def level(self, instance: Instance) -> str:
        return level_name(instance.log_level)

    @admin.display(description="error type", ordering="error_type")
    def error_type_text(self, instance: Instance) -> str:
        return printable(instance.error_type)

    @admin.display(description="error")
    def error(self, instance: Instance) -> str:
        return error_line(instance_metadata(instance))

    @admin.display(description="traceback")
    def traceback(self, instance: Instance) -> SafeString | str:
        text = traceback_text(instance_metadata(instance))
        return "" if text is None else preformatted(text)

    @admin.display(description="kwargs")
    def kwargs_value(self, instance: Instance) -> SafeString:
        what = f"the kwargs of {instance.name!r}"
        return preformatted(decoded(instance.session.uid, instance.kwargs, what))

    @admin.display(description="metadata (but the traceback)")
    def metadata_value(self, instance: Instance) -> SafeString:
        return preformatted(without_traceback(instance_metadata(instance)))


def register(site: admin.AdminSite, using: str | None = None) -> None:
    """Register the sessions' and instances' admins on ``site``, reading the database ``using``."""
    site.register(Session, type("SessionAdmin", (SessionAdmin,), {"using": using}))
    site.register(Instance, type("InstanceAdmin", (InstanceAdmin,), {"using": using}))


if apps.is_installed("django.contrib.admin"):
    admin.site.register(Session, SessionAdmin)
    admin.site.register(Instance, InstanceAdmin)
