"""Errors of this package survive pickling (a Celery result backend, a prefork
child's answer to its parent): same type, same message, same attributes."""

from __future__ import annotations

import inspect
import pickle

import pytest

from triggers import errors
from triggers.errors import (
    DispatchFailed,
    LockLost,
    SessionIncomplete,
    SessionOverwritten,
    StorageCorrupted,
    StoredByNewerVersion,
    TriggersError,
    UnknownInstance,
)

#: arguments for the errors whose arguments are not all text
SPECIAL = {
    LockLost: ("triggers.s:{a}1:u:lock", 2.5),
    DispatchFailed: ({"t#0": RuntimeError("broker gone")},),
    SessionIncomplete: ("u", ["k1", "k2"]),
    SessionOverwritten: ("u", "head", 7),
}


def _errors_of_the_module() -> list[type[TriggersError]]:
    return [
        cls
        for cls in vars(errors).values()
        if inspect.isclass(cls) and issubclass(cls, TriggersError) and cls is not TriggersError
    ]


def _built(cls: type[TriggersError]) -> TriggersError:
    if cls in SPECIAL:
        return cls(*SPECIAL[cls])
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
    required = [p for p in parameters if p.default is p.empty and p.kind is p.POSITIONAL_OR_KEYWORD]
    return cls(*(f"arg-{i}:\x1b[31m{{x}}" for i in range(len(required))))


@pytest.mark.parametrize("cls", _errors_of_the_module(), ids=lambda cls: cls.__name__)
def test_every_error_comes_back_from_a_pickle_as_it_was(cls):
    error = _built(cls)
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is cls
    assert str(back) == str(error)
    assert back.args == error.args
    assert repr(back.__dict__) == repr(error.__dict__)


def test_the_errors_with_their_own_arguments_keep_them():
    newer = pickle.loads(pickle.dumps(StoredByNewerVersion("u", "head", "triggers/split-9")))
    assert (newer.uid, newer.key, newer.stored_format) == ("u", "head", "triggers/split-9")
    assert isinstance(newer, StorageCorrupted)
    missing = pickle.loads(pickle.dumps(SessionIncomplete("u", ["k1"])))
    assert missing.missing == ["k1"] and missing.uid == "u"
    unknown = pickle.loads(pickle.dumps(UnknownInstance("t#9", "u")))
    assert (unknown.name, unknown.uid, str(unknown)) == (
        "t#9",
        "u",
        "no task instance named 't#9' in session 'u'",
    )


def test_import_errors_keep_the_module_they_name():
    """ImportError keeps ``name`` and ``path`` outside ``__dict__``: they come back too."""
    from triggers.importlib import DottedPathError
    from triggers.registry import PluginLoadError

    dotted = DottedPathError("pkg.mod.thing", "no such module", "pkg.mod")
    dotted.path = "/srv/app/pkg/mod.py"
    plugin = PluginLoadError("sync", "triggers.runners", "pkg:Runner", ImportError("gone"))
    for error in (dotted, plugin):
        back = pickle.loads(pickle.dumps(error))
        assert type(back) is type(error) and str(back) == str(error)
        assert (back.name, back.path) == (error.name, error.path)
    assert pickle.loads(pickle.dumps(dotted)).name == "pkg.mod"
