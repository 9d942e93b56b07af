"""What a task runner is: :class:`BaseTaskRunner`, shared by every runner module.

It lives apart from :mod:`triggers.tasks.runners` so that a runner defined in
another module of the package (the Celery runner, :mod:`triggers.tasks.celery_runner`)
and :mod:`triggers.tasks.runners`, which re-exports every runner, need not import
each other.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from .payload import TaskPayload

if TYPE_CHECKING:
    from ..manager import TriggerManager
    from ..types import TaskInstance

__all__ = ["BaseTaskRunner"]


class BaseTaskRunner(ABC):
    """Sends ready task instances to be run.

    Subclasses define ``name`` and :meth:`run`, and are registered under the
    ``triggers.runners`` entry point group; a task configuration selects one
    with ``using``.
    """

    #: the key the runner is registered under
    name: ClassVar[str]

    #: Whether the runner itself delays a run by its instance's ``cooldown``
    #: (a broker's countdown), so that the run which asked for a retry need
    #: not wait before replaying.
    delays_by_cooldown: ClassVar[bool] = False

    #: Whether the runner runs tasks in the process that hands them over:
    #: that process must have them registered (the writing commands check),
    #: and a per-process cache (LocMem) is enough for their sessions. A
    #: runner that does not say so is taken to send tasks to other processes
    #: (system check ``triggers.E005``).
    runs_in_process: ClassVar[bool] = False

    @abstractmethod
    def run(self, manager: TriggerManager, task_instance: TaskInstance) -> None:
        """Start running ``task_instance`` (already saved as ``scheduled``).

        An exception raised here means the task could not be started: the
        manager marks the instance ``failed`` with the error recorded.
        """

    def _prepare_task_kwargs(
        self, manager: TriggerManager, task_instance: TaskInstance
    ) -> dict[str, Any]:
        """The payload :func:`triggers.tasks.execution.run_task` receives, as plain data."""
        return TaskPayload.for_instance(manager, task_instance).to_dict()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {getattr(self, 'name', '?')!r}>"
