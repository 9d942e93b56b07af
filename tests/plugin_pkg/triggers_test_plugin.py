"""A plugin as the storage guide tells one to write it.

``DictStorageBackend`` follows the guide's recipe and nothing else: a
``name``, ``_load_from_backend`` and ``_save``; everything else, locking
included, comes from ``BaseTriggerStorage``. ``RecordingRunner`` runs
nothing, it writes down what it was given. Both modules of triggers are
imported at the top, as a plugin would: loading it must not cause an
import cycle.
"""

import copy

from triggers.runners import BaseTaskRunner
from triggers.storages.base import BaseTriggerStorage

#: session uid -> (task configs, task instances, metadata), as plain data
SESSIONS = {}

#: names of the task instances RecordingRunner was asked to run, in order
RECORDED = []


class DictStorageBackend(BaseTriggerStorage):
    """Keeps each session in a dict of this process, as plain data."""

    name = "dict"

    def _load_from_backend(self):
        stored = SESSIONS.get(self.uid)
        if stored is None:
            return {}, {}, {}
        return copy.deepcopy(stored)

    def _save(self):
        SESSIONS[self.uid] = copy.deepcopy(
            (self._serialize(self._configs), self._serialize(self._instances), self._metas)
        )


class RecordingRunner(BaseTaskRunner):
    """Records the name of each instance it is asked to run, and runs nothing."""

    name = "recording"

    def run(self, manager, task_instance):
        RECORDED.append(task_instance.name)
