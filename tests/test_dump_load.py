"""``triggers dump`` and ``triggers load``: a session to JSON and back, exactly."""

from __future__ import annotations

import json
import uuid
from collections import OrderedDict
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest

from tests import ops_support as ops
from tests.conftest import prepare_cache, require_service
from tests.ops_support import PAGE, command, questionnaire, refused, stored
from triggers import CacheStorageBackend, TriggerManager
from triggers.operations.codec import TAG, UnencodableValue, decode, encode


class Offset(tzinfo):
    """A time zone of its own, which the dump could not name."""

    def utcoffset(self, dt):
        return timedelta(hours=1)


#: values a session may hold that JSON has no type for, and some it has
AWKWARD = {
    "naive": datetime(2024, 2, 29, 23, 59, 58, 123456),
    "aware": datetime(2024, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=-5))),
    "utc": datetime(2024, 1, 1, 12, 0, tzinfo=timezone.utc),
    "zoned": datetime(2024, 7, 1, 8, 30, tzinfo=ZoneInfo("Europe/Paris")),
    "day": date(2024, 3, 1),
    "clock": time(7, 15, 0, 5),
    "span": timedelta(days=-1, seconds=5, microseconds=7),
    "set": {3, 1, 2},
    "frozen": frozenset({"b", "a"}),
    "tuple": (1, "two", (3.0, None)),
    "bytes": b"\x00\xffpickle",
    "money": Decimal("12.3400"),
    "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "int keys": {1: "one", (2, 3): "pair"},
    "tag as a key": {TAG: "not a tag", "value": 1},
    "floats": [float("inf"), -float("inf"), 0.5],
    "nested": [{"deep": [{"set": {1}}]}],
    "plain": {"s": "x", "n": 1, "b": True, "none": None, "list": [1, [2]]},
}


def test_the_codec_gives_back_equal_values_of_the_same_types():
    encoded = encode(AWKWARD)
    text = json.dumps(encoded, allow_nan=False, sort_keys=True)
    decoded = decode(json.loads(text))
    assert decoded == AWKWARD
    for key, value in AWKWARD.items():
        assert type(decoded[key]) is type(value), key
    assert decoded["zoned"].tzinfo == ZoneInfo("Europe/Paris")
    assert type(decoded["tuple"][2]) is tuple
    assert decoded["naive"].tzinfo is None
    nan = decode(json.loads(json.dumps(encode(float("nan")))))
    assert nan != nan


def test_sets_are_written_in_one_order():
    assert json.dumps(encode({"b", "a", "c"})) == json.dumps(encode({"c", "a", "b"}))


@pytest.mark.parametrize(
    "value, where",
    [
        ({"kwargs": {"x": [Fraction(1, 3)]}}, "value['kwargs']['x'][0]"),
        ({"d": OrderedDict(a=1)}, "value['d']"),
        ({"when": datetime(2024, 1, 1, tzinfo=Offset())}, "value['when']"),
    ],
)
def test_values_it_cannot_carry_exactly_are_refused_with_where_they_are(value, where):
    with pytest.raises(UnencodableValue) as caught:
        encode(value)
    assert f"cannot dump {where}" in str(caught.value)


@pytest.mark.parametrize("data", [{TAG: "complex", "value": "1j"}, {TAG: "bytes", "value": "%%%"}, {TAG: 3}])
def test_the_codec_refuses_what_it_never_writes(data):
    with pytest.raises(ValueError):
        decode(data)


# --------------------------------------------------------------------------- the commands


@pytest.fixture(params=[("locmem", "split"), ("redis", "split"), ("redis", "single"), ("locmem", "single")])
def where(request):
    alias, layout = request.param
    return prepare_cache(request, alias), layout


@pytest.fixture
def session(uid, where):
    """The questionnaire with a failure, a stuck instance and awkward values in its kwargs."""
    alias, layout = where
    questionnaire(uid, alias, fail=("t_importResponses",), layout=layout)
    ops.add_stuck_instance(uid, alias)
    TriggerManager(CacheStorageBackend(uid, cache=alias, layout=layout)).fire("isEmbeddedApplication", AWKWARD)
    return uid


def dumped(uid, alias):
    return json.loads(command("dump", uid, "--cache", alias))


def test_dump_load_dump_is_the_same_but_for_the_uid(session, where, tmp_path):
    alias, layout = where
    first = dumped(session, alias)
    assert first["format"] == "triggers-session" and first["version"] == 1
    assert first["uid"] == session
    path = tmp_path / "session.json"
    assert command("dump", session, "--cache", alias, "--output", str(path)) == f"dumped session {session} to {path}\n"
    assert json.loads(path.read_text()) == first

    copy = "copy-" + uuid.uuid4().hex
    out = command("load", str(path), "--uid", copy, "--cache", alias, "--layout", layout)
    assert out == f"loaded session {copy} in cache {alias}: 3 tasks, 4 instances\n"
    second = dumped(copy, alias)
    assert second.pop("uid") == copy
    first.pop("uid")
    assert second == first

    original, loaded = CacheStorageBackend(session, cache=alias), CacheStorageBackend(copy, cache=alias)
    assert loaded.debug_repr() == original.debug_repr()
    assert loaded.latest_kwargs["isEmbeddedApplication"] == AWKWARD


def test_a_loaded_session_goes_on(session, where, tmp_path):
    alias, layout = where
    path = tmp_path / "session.json"
    command("dump", session, "--cache", alias, "--output", str(path))
    copy = "copy-" + uuid.uuid4().hex
    command("load", str(path), "--uid", copy, "--cache", alias, "--layout", layout)

    manager = TriggerManager(CacheStorageBackend(copy, cache=alias, layout=layout))
    [ready] = manager.fire("pageReceived", {**PAGE, "page": 2})
    assert ready.name == "t_importResponses#2"
    storage = CacheStorageBackend(copy, cache=alias)
    assert storage["t_importResponses#2"].status == "finished"
    assert storage["t_importResponses#2"].metadata["result"]["page"] == 2
    manager.replay_failed_instance("t_importResponses#0")
    assert CacheStorageBackend(copy, cache=alias)["t_importResponses#3"].status == "finished"
    # The original did not move.
    assert "t_importResponses#2" not in CacheStorageBackend(session, cache=alias).instances


def test_load_refuses_to_overwrite_without_replace(session, where, tmp_path):
    alias, layout = where
    other = questionnaire("other-" + uuid.uuid4().hex, alias, layout=layout)
    path = tmp_path / "other.json"
    command("dump", other, "--cache", alias, "--output", str(path))
    before = stored(session, alias)
    message = refused("load", str(path), "--uid", session, "--cache", alias)
    assert f"session {session!r} already exists" in message and "--replace" in message
    assert stored(session, alias) == before

    out = command("load", str(path), "--uid", session, "--cache", alias, "--layout", layout, "--replace")
    assert out == f"replaced session {session} in cache {alias}: 3 tasks, 3 instances\n"
    replaced, source = dumped(session, alias), dumped(other, alias)
    assert replaced.pop("uid") == session and source.pop("uid") == other
    assert replaced == source
    # The replaced session works: its index knows only the new instances.
    manager = TriggerManager(CacheStorageBackend(session, cache=alias, layout=layout))
    assert [i.name for i in manager.fire("pageReceived", {**PAGE, "page": 5})] == ["t_importResponses#1"]
    assert CacheStorageBackend(session, cache=alias)["t_importResponses#1"].status == "finished"


def test_load_refuses_bad_documents_and_changes_nothing(session, where, tmp_path):
    alias, _ = where
    good = dumped(session, alias)
    before = stored(session, alias)
    target = "target-" + uuid.uuid4().hex

    def document(name, change):
        data = json.loads(json.dumps(good))
        change(data)
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(data))
        return str(path)

    broken = tmp_path / "broken.json"
    broken.write_text("{")
    cases = [
        (str(broken), "is not valid JSON"),
        (str(tmp_path / "missing.json"), "cannot read"),
        (document("format", lambda d: d.update(format="other")), "is not a session dump"),
        (document("version", lambda d: d.update(version=2)), "dump of version 2"),
        (document("task", lambda d: d["instances"]["t_importSubject#0"].update(task="t_gone")), "which the dump lacks"),
        (document("status", lambda d: d["instances"]["t_importSubject#0"].update(status="lost")), "unknown status"),
        (document("config", lambda d: d["tasks"]["t_importSubject"].update(run=5)), "task 't_importSubject'"),
        (document("tag", lambda d: d["metas"].update(x={TAG: "complex", "value": 1})), "unknown kind"),
        (document("uid", lambda d: d.update(uid="a b")), "invalid session uid"),
    ]
    for path, words in cases:
        uid_args = [] if words == "invalid session uid" else ["--uid", target]
        message = refused("load", path, *uid_args, "--cache", alias)
        assert words in message, (path, message)
        assert stored(target, alias) == {}
    fine = document("fine", lambda d: None)
    assert "invalid session uid" in refused("load", fine, "--uid", "", "--cache", alias)
    assert "already exists" in refused("load", fine, "--cache", alias)  # under its own uid
    assert stored(session, alias) == before


def test_dump_refuses_a_value_it_cannot_carry(uid):
    questionnaire(uid, "locmem")
    TriggerManager(CacheStorageBackend(uid, cache="locmem")).fire("isEmbeddedApplication", {"f": Fraction(1, 3)})
    from django.core.management.base import CommandError

    with pytest.raises(CommandError) as caught:
        command("dump", uid, "--cache", "locmem", "--output", "never-written.json")
    assert caught.value.returncode == 1
    assert "cannot dump metas['latest_kwargs']['isEmbeddedApplication']['f']: a fractions.Fraction" in str(caught.value)
    assert "no session" in refused("dump", "no-such-session", "--cache", "locmem")


def test_dump_and_load_in_processes_of_their_own(uid, tmp_path):
    require_service("redis")
    questionnaire(uid, "redis", fail=("t_importResponses",))
    path = tmp_path / "dump.json"
    done = ops.python_m("dump", uid, "--cache", "redis", "--output", str(path), "--settings", "tests.settings")
    assert done.returncode == 0, done.stderr
    copy = "copy-" + uuid.uuid4().hex
    done = ops.django_admin("load", str(path), "--uid", copy, "--cache", "redis")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"loaded session {copy} in cache redis: 3 tasks, 3 instances\n"
    again = ops.django_admin("dump", copy, "--cache", "redis")
    assert again.returncode == 0, again.stderr
    first, second = json.loads(path.read_text()), json.loads(again.stdout)
    assert (first.pop("uid"), second.pop("uid")) == (uid, copy)
    assert first == second
    ops.assert_one_line_refusal(ops.django_admin("load", str(path), "--uid", copy, "--cache", "redis"), "already exists")
