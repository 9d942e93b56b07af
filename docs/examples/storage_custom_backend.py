"""A storage backend of your own: three members are enough (docs/storage.rst)."""

from triggers.storages.base import BaseTriggerStorage

#: Where this backend keeps sessions: a dict, for the sake of the example.
SESSIONS = {}


class DictStorageBackend(BaseTriggerStorage):
    name = "dict"

    def _load_from_backend(self):
        state = SESSIONS.get(self.uid, {})
        return state.get("tasks", {}), state.get("instances", {}), state.get("metas", {})

    def _save(self):
        SESSIONS[self.uid] = {
            "tasks": self._serialize(self._configs),
            "instances": self._serialize(self._instances),
            "metas": self._metas,
        }
