"""Which run owns an instance: a run's end is fenced as a lock holder's write is.

A run starts by committing its instance ``running`` with a token of its own
(random, one per run) in the instance's metadata, under :data:`META_RUN`.
Every later status change of that instance made through the run's manager
(the ``finished``, ``failed`` or retry commit, a :class:`StatusChange`, and
``update_instance_status`` called by the task body on ``context.manager``)
first checks, inside the commit, that the instance is still ``running`` with
that token. When it is not (an operator marked it failed and replayed it
while the run was paused, say), the commit writes nothing, fires nothing and
dispatches nothing: :class:`~triggers.errors.RunSuperseded` is raised.

The check runs inside the commit's block, on the state the commit compares:
without the lock, a commit lands only if the session's version is the one
the block read (so a recovery committed in between makes it fail and run
again on fresh state); under the lock, the state is read fresh anyway.

The token is stored in the metadata dict, which Triggers 2.x reads as a
whole and never looks into for this key: a 2.x reader sees one more entry.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from ..errors import RunSuperseded
from ..types import TaskInstance

__all__ = ["META_RUN", "RunFence", "run_token"]

#: the metadata key a run's token is stored under (one of this package's own)
META_RUN = "runToken"

logger = logging.getLogger("triggers.task")


def run_token(instance: TaskInstance) -> str | None:
    """The token of the run that last started ``instance`` (None if none did)."""
    token = instance.metadata.get(META_RUN)
    return token if isinstance(token, str) else None


class RunFence:
    """The claim of one run on one instance, checked before each of its status changes.

    Set on the run's manager as ``run_owner``; the manager calls it with the
    stored instance and the status about to be written, inside the commit.
    """

    def __init__(self, uid: str, name: str) -> None:
        self.uid = uid
        self.name = name
        self.token = secrets.token_hex(16)
        #: what the run returned, once it finished (carried by RunSuperseded)
        self.result: Any = None

    def claim(self) -> dict[str, Any]:
        """The metadata the ``running`` commit merges: this run's token."""
        return {META_RUN: self.token}

    def owns(self, instance: TaskInstance) -> bool:
        """Whether ``instance`` (as stored) is still running this run."""
        return instance.status == TaskInstance.STATUS_RUNNING and run_token(instance) == self.token

    def __call__(self, instance: TaskInstance, status: str) -> None:
        """Refuse (RunSuperseded) a status change of this run's instance it no longer owns."""
        if instance.name != self.name or self.owns(instance):
            return
        raise RunSuperseded(self.uid, self.name, status, instance.status, self.result)


def log_superseded(exc: RunSuperseded) -> None:
    """Say, where operators look, that a run ended after its instance was taken from it."""
    logger.warning("%s", exc, extra={"storage_uid": exc.uid, "instance_name": exc.name})
