"""The admin's list filters: what needs attention, and the instances' columns.

"Has failed", "has unresolved" and "stuck" ask the database backend's
queries (:mod:`triggers.storages.database.queries`), so the admin and any
other caller agree on what they mean. A value not among a filter's choices
is refused (the list says its filters were wrong) rather than ignored.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.db.models import QuerySet
from django.http import HttpRequest

from .admin_display import LOG_LEVELS, level_name
from .models import Session
from .operations.terminal import printable
from .storages.database.queries import find_instances, find_sessions
from .types import TaskInstance

__all__ = [
    "ErrorTypeFilter",
    "HasFailedFilter",
    "HasUnresolvedFilter",
    "LogLevelFilter",
    "StatusFilter",
    "StuckFilter",
    "TaskFilter",
]

#: the "stuck" filter's choices: seconds in ``scheduled`` or ``running``
STUCK_CHOICES = (("300", "over 5 minutes"), ("3600", "over 1 hour"), ("86400", "over 1 day"))


class _AliasFilter(admin.SimpleListFilter):
    """A filter that knows the database alias of the admin it filters for."""

    def __init__(self, request: HttpRequest, params: Any, model: Any, model_admin: Any) -> None:
        self.alias: str = model_admin.alias
        super().__init__(request, params, model, model_admin)

    def chosen(self) -> str | None:
        """The value chosen, which must be one of the choices (else the list says so)."""
        value = self.value()
        if value is not None and value not in {str(key) for key, _ in self.lookup_choices}:
            raise IncorrectLookupParameters(f"{self.parameter_name}={value!r} is not a choice")
        return value


class _YesFilter(_AliasFilter):
    """One choice, "yes": the sessions that ``matching`` gives."""

    def lookups(self, request: HttpRequest, model_admin: Any) -> Any:
        return (("yes", "Yes"),)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.chosen() is None:
            return queryset
        return queryset.filter(pk__in=self.matching().order_by().values("pk"))

    def matching(self) -> QuerySet[Any]:
        raise NotImplementedError


class HasFailedFilter(_YesFilter):
    title = "has failed"
    parameter_name = "failed"

    def matching(self) -> QuerySet[Any]:
        return find_sessions(self.alias, failed=True)


class HasUnresolvedFilter(_YesFilter):
    title = "has unresolved"
    parameter_name = "unresolved"

    def matching(self) -> QuerySet[Any]:
        return find_sessions(self.alias, unresolved=True)


class StuckFilter(_AliasFilter):
    """Sessions (or instances) with an instance in ``scheduled`` or ``running`` that long."""

    title = "stuck (scheduled or running)"
    parameter_name = "stuck"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Any:
        return STUCK_CHOICES

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.chosen()
        if value is None:
            return queryset
        if queryset.model is Session:
            rows = find_sessions(self.alias, stuck_for=float(value))
        else:
            rows = find_instances(self.alias, stuck_for=float(value))
        return queryset.filter(pk__in=rows.order_by().values("pk"))


class StatusFilter(_AliasFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Any:
        return [(status, status) for status in sorted(TaskInstance.ALL_STATUSES)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.chosen()
        return queryset if value is None else queryset.filter(status=value)


class _ColumnFilter(_AliasFilter):
    """Each value a column holds among the instances listed (blank ones left out)."""

    column = ""
    #: the most values offered
    limit = 200

    def lookups(self, request: HttpRequest, model_admin: Any) -> Any:
        rows = model_admin.get_queryset(request).exclude(**{self.column: ""})
        values = rows.order_by(self.column).values_list(self.column, flat=True).distinct()
        return [(value, printable(value)) for value in values[: self.limit]]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()  # any value: the list may offer only the first ones
        return queryset if value is None else queryset.filter(**{self.column: value})


class TaskFilter(_ColumnFilter):
    title = "task"
    parameter_name = "task"
    column = "task"


class ErrorTypeFilter(_ColumnFilter):
    title = "error type"
    parameter_name = "error_type"
    column = "error_type"


class LogLevelFilter(_AliasFilter):
    title = "log level (at least)"
    parameter_name = "log_level"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Any:
        return [(str(level), level_name(level)) for level in LOG_LEVELS]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.chosen()
        return queryset if value is None else queryset.filter(log_level__gte=int(value))
