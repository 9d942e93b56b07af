"""A worker sent an instance its storage does not hold says which session, where it
looked and why that happens, and the error survives a trip through pickle (Celery)."""

import pickle

import pytest

from tests.runner_support import RecordingRunner
from triggers import CacheStorageBackend, TriggerManager
from triggers.errors import InstanceMissing, UnknownInstance, UnknownTask
from triggers.tasks.execution import run_task


def _payload(uid, cache, name="t#0"):
    """The payload a runner would send for ``name`` of session ``uid``."""
    manager = TriggerManager(CacheStorageBackend(uid, cache=cache))
    manager.update_configuration({"t": {"after": ["go"], "run": "tests.add", "using": "tests-recording"}})
    manager.fire("go", {"n": 1})
    return RecordingRunner.payloads(uid)[name]


def test_an_instance_whose_session_is_gone_is_named_with_its_storage_and_causes(uid, test_runners):
    payload = _payload(uid, "locmem")
    assert CacheStorageBackend(uid, cache="locmem").delete()  # expired, or never in this worker's cache
    with pytest.raises(InstanceMissing) as info:
        run_task(payload)
    message = str(info.value)
    assert "'t#0'" in message and repr(uid) in message
    assert "cache 'locmem' (LocMemCache)" in message
    assert "expired or was deleted" in message and "does not share" in message
    assert isinstance(info.value, UnknownInstance) and isinstance(info.value, KeyError)
    assert CacheStorageBackend(uid, cache="locmem").stored_nothing()  # nothing written


@pytest.mark.parametrize(
    "error",
    [
        InstanceMissing("t#0", "s-1", "cache 'default' (LocMemCache)"),
        UnknownInstance("t#9", "s-2"),
        UnknownTask("nope", "s-3"),
    ],
)
def test_the_errors_survive_pickle_whole(error):
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error)
    assert str(again) == str(error) and again.args == error.args
    assert (again.name, again.uid) == (error.name, error.uid)
