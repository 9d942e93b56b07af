"""The examples of docs/storage.rst and docs/inspecting.rst run, and do what the pages say."""

import json
import logging
from datetime import datetime
from pathlib import Path

import pytest

from triggers import CacheStorageBackend, TriggerManager
from triggers.storages.base import BaseTriggerStorage

from .runner_support import load_example
from .storage_support import assert_plain

DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.mark.parametrize("page", ["storage.rst", "inspecting.rst"])
def test_pages_include_existing_examples(page):
    text = (DOCS / page).read_text(encoding="utf-8")
    included = [line.split("::", 1)[1].strip() for line in text.splitlines() if "literalinclude::" in line]
    assert included, f"{page} shows no example"
    for path in included:
        assert (DOCS / path).is_file(), path


def test_session_state_example(uid, capsys):
    example = load_example("storage_session_state")
    example.build_session(uid)
    storage = example.read_session(uid)
    out = capsys.readouterr().out
    assert "t_importSubject#0 (unstarted) {'firstPageReceived': {'page': 1}}" in out
    assert "['t_scorePage#0', 't_scorePage#1']" in out
    assert "no task instance named 't_importSubject#9'" in out
    assert {i.name: i.status for i in storage} == {
        "t_importSubject#0": "unstarted",
        "t_scorePage#0": "unstarted",
        "t_scorePage#1": "unstarted",
    }

    extra, retry = example.change_session(uid)
    assert extra.name == "t_scorePage#2"
    assert retry.name == "t_scorePage#3"
    assert retry.metadata == {"depth": 1, "parent": "t_scorePage#0"}
    assert retry.kwargs == {"pageReceived": {"page": 1}}
    reread = example.read_session(uid)
    assert reread["t_scorePage#2"].kwargs == {"pageReceived": {"page": 0}}
    assert reread.metadata["reviewed_by"] == "ops"


def test_custom_backend_example(uid):
    example = load_example("storage_custom_backend")
    Backend = example.DictStorageBackend
    assert issubclass(Backend, BaseTriggerStorage)
    assert Backend.name == "dict"

    manager = TriggerManager(Backend(uid))
    manager.update_configuration(
        {
            "t_a": {"after": ["start", "go"], "run": "a"},
            "t_b": {"after": ["t_a"], "andEvery": "tick", "unless": ["stop"], "run": "b"},
        }
    )
    manager.fire("start", {"n": 1})
    manager.fire("tick", {"n": 1})
    manager.fire("tick", {"n": 2})
    manager.fire("stop")

    stored = example.SESSIONS[uid]
    assert_plain(stored)
    storage = Backend(uid)
    assert {i.name: i.status for i in storage} == {
        "t_a#0": "unstarted",
        "t_b#0": "abandoned",
        "t_b#1": "abandoned",
    }
    assert storage.latest_kwargs == {"start": {"n": 1}, "tick": {"n": 2}, "stop": {}}
    assert storage.debug_repr()["instances"] == stored["instances"]
    assert [t.name for t in storage.get_unresolved_tasks()] == ["t_a"]

    with pytest.raises(RuntimeError):
        storage.save()
    with storage.acquire_lock():
        storage.clone_instance("t_a#0")
        storage.save()
    assert Backend(uid)["t_a#1"].metadata == {"depth": 1, "parent": "t_a#0"}
    manager.update_instance_status("t_a#0", "failed", {"logLevel": logging.ERROR})
    assert [i.name for i in Backend(uid).get_instances_with_unresolved_logs()] == ["t_a#0"]


@pytest.fixture
def inspected(uid):
    """The session of the session-state example, after some instances moved on."""
    load_example("storage_session_state").build_session(uid)
    manager = TriggerManager(CacheStorageBackend(uid))
    manager.update_instance_status("t_scorePage#0", "running")
    manager.update_instance_status(
        "t_scorePage#0",
        "failed",
        {"exceptionType": "builtins.ValueError", "exceptionInfo": "Traceback ...", "logLevel": logging.ERROR},
    )
    manager.update_instance_status("t_scorePage#1", "finished", {"result": {"score": 4}})
    return uid


def test_inspecting_example(inspected, uid):
    example = load_example("inspecting_session")

    lines = example.status_report(uid)
    assert [line.split()[:2] for line in lines] == [
        ["t_importSubject#0", "unstarted"],
        ["t_scorePage#0", "failed"],
        ["t_scorePage#1", "finished"],
    ]
    assert lines[0].split()[2] == "-"  # never changed status
    assert lines[1].split()[2].endswith("+00:00")

    assert example.needs_attention(uid) == {
        "tasks": ["t_importSubject", "t_scorePage"],
        "instances": ["t_importSubject#0", "t_scorePage#0"],
        "unread_failures": {"t_scorePage#0": {"level": "ERROR", "error": "builtins.ValueError"}},
    }
    TriggerManager(CacheStorageBackend(uid)).mark_instance_logs_resolved("t_scorePage#0")
    assert example.needs_attention(uid)["unread_failures"] == {}

    stamps = example.history(uid, "t_scorePage#0")
    assert [name for name, _ in stamps][:1] == ["created"]
    assert {name for name, _ in stamps} == {"created", "running", "failed", "lastModified"}
    assert all(isinstance(when, datetime) and when.tzinfo is None for _, when in stamps)

    dumped = json.loads(example.dump(uid))
    assert set(dumped) == {"tasks", "instances", "metas"}
    assert dumped["instances"]["t_scorePage#1"]["metadata"]["result"] == {"score": 4}
    created = dumped["instances"]["t_scorePage#0"]["metadata"]["timestamps"]["created"]
    assert datetime.fromisoformat(created).tzinfo is None
