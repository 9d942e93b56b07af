"""The tables of the database storage backend (:mod:`triggers.storages.database`).

A session is a row; each of its task instances is a row; its task
configurations are stored once per distinct set (a session points at the
set by its digest, so every session configured the same way shares one).
Values a session holds (metadata, an instance's kwargs and metadata) are
pickled, as the cache backend stores them, so every value it accepts comes
back equal; what the queries across sessions filter on (status, task, log
level, error type, times) is also kept in columns of its own.

Nothing here is written except by the storage backend: the admin shows the
rows read-only and changes them only through the manager.
"""

from __future__ import annotations

from django.db import models

from .storages.database.limits import DIGEST_LENGTH, NAME_LENGTH, UID_LENGTH

__all__ = ["Configuration", "Instance", "Session", "TaskDefinition"]



class Configuration(models.Model):
    """One distinct set of task configurations, shared by the sessions that use it."""

    digest = models.CharField(max_length=DIGEST_LENGTH, unique=True)
    created = models.DateTimeField()

    class Meta:
        verbose_name = "task configuration set"

    def __str__(self) -> str:
        return self.digest[:12]


class TaskDefinition(models.Model):
    """One task of a configuration set (rows never change once written)."""

    configuration = models.ForeignKey(
        Configuration, on_delete=models.CASCADE, related_name="tasks"
    )
    name = models.CharField(max_length=NAME_LENGTH)
    #: the runner key (``using``), blank for the default
    runner = models.CharField(max_length=NAME_LENGTH, blank=True)
    #: the task's definition as stored by the cache backend (pickled dict)
    definition = models.BinaryField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["configuration", "name"], name="triggers_task_unique")
        ]

    def __str__(self) -> str:
        return self.name


class Session(models.Model):
    """One session: its metadata, its instance index, its lifetime and its lock."""

    uid = models.CharField(max_length=UID_LENGTH, unique=True)
    configuration = models.ForeignKey(
        Configuration,
        to_field="digest",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="sessions",
    )
    #: the session's metadata (``latest_kwargs`` among it), pickled
    metadata = models.BinaryField()
    #: counts of regularly named instances per task, and the other names
    instance_index = models.JSONField(default=dict)
    #: seconds the session lives after a save (null: for ever)
    lifetime = models.FloatField(null=True, blank=True)
    #: when it expires (null: never); an expired session reads as absent
    expires = models.DateTimeField(null=True, blank=True, db_index=True)
    created = models.DateTimeField()
    modified = models.DateTimeField(db_index=True)
    #: bumped by every commit, so a reader can tell two states apart
    revision = models.BigIntegerField(default=0)
    #: the lock: its holder's token ('' when free) and when it lapses (null: never)
    lock_token = models.CharField(max_length=128, blank=True, default="")
    lock_expires = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "triggers session"

    def __str__(self) -> str:
        return self.uid


class Instance(models.Model):
    """One task instance of a session."""

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="instances")
    name = models.CharField(max_length=NAME_LENGTH)
    task = models.CharField(max_length=NAME_LENGTH)
    status = models.CharField(max_length=16)
    #: the ``logLevel`` of its metadata (null: none recorded)
    log_level = models.IntegerField(null=True, blank=True)
    logs_resolved = models.BooleanField(default=False)
    #: the ``exceptionType`` of its metadata ('' when none)
    error_type = models.CharField(max_length=NAME_LENGTH, blank=True, default="")
    created = models.DateTimeField(null=True, blank=True)
    modified = models.DateTimeField(null=True, blank=True)
    #: when it took its current status
    status_since = models.DateTimeField(null=True, blank=True)
    #: the instance's kwargs, metadata and abandon state, pickled
    kwargs = models.BinaryField()
    metadata = models.BinaryField()
    abandon_state = models.JSONField(default=list)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["session", "name"], name="triggers_instance_unique")
        ]
        indexes = [
            models.Index(fields=["session", "task", "status"], name="triggers_inst_task"),
            models.Index(fields=["status", "status_since"], name="triggers_inst_status"),
            models.Index(fields=["task", "status"], name="triggers_inst_task_status"),
            models.Index(fields=["error_type"], name="triggers_inst_error"),
            models.Index(fields=["log_level", "logs_resolved"], name="triggers_inst_logs"),
            models.Index(fields=["modified"], name="triggers_inst_modified"),
        ]

    def __str__(self) -> str:
        return self.name
