"""A tasks module no app lists: importing it (by a dotted path) registers its task."""

from __future__ import annotations

from typing import Any

from triggers.task import TaskContext, TriggerTask


class Lazy(TriggerTask):
    def _run(self, context: TaskContext) -> dict[str, Any]:
        return {"lazy": True}
