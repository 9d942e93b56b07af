"""The operator commands on a storage backend other than the cache's: ``--storage NAME``.

The backend is the test plugin's ``DictStorageBackend`` (tests/plugin_pkg,
registered under the ``dict`` entry point), which follows the storage
guide's recipe and nothing else: no lifetime, no cache, no ``delete()``.
Its sessions live in a dict of the process that made them, so a command
run in another process (``python -m triggers``) cannot see them: the
commands are run through ``call_command`` here, and a subprocess is only
asked what it can answer without a session (that the option reaches the
registry there, and the refusals).
"""

from __future__ import annotations

import json

import pytest

from tests.ops_support import (
    WORKFLOW,
    assert_one_line_refusal,
    command,
    python_m,
    questionnaire,
    questionnaire_in,
    refused,
)
from triggers import storage_backends

DICT = ("--storage", "dict")


@pytest.fixture
def deletable(plugin):
    """The plugin's backend with a ``delete()``, registered as ``dict-deletable``."""

    class DeletableDictStorage(plugin.DictStorageBackend):
        name = "dict-deletable"

        def delete(self):
            with self.acquire_lock():
                self.invalidate_cache()
                return plugin.SESSIONS.pop(self.uid, None) is not None

    storage_backends.register("dict-deletable", DeletableDictStorage)
    yield DeletableDictStorage
    storage_backends.refresh()


def dict_questionnaire(plugin, uid, fail=("t_importResponses",), backend=None):
    """The demo's questionnaire run to its end in the plugin's backend; the first
    run of each task in ``fail`` fails."""
    return questionnaire_in((backend or plugin.DictStorageBackend)(uid), fail)


@pytest.fixture
def session(plugin, uid):
    yield dict_questionnaire(plugin, uid)
    plugin.SESSIONS.pop(uid, None)


def state(plugin, uid):
    """The session as the backend gives it (through its public debug_repr)."""
    return plugin.DictStorageBackend(uid).debug_repr()


# --------------------------------------------------------------------------- reading


def test_show_says_the_storage_and_that_the_lifetime_is_unknown(session):
    lines = command("show", session, *DICT).splitlines()
    assert lines[0] == f"session {session} (storage dict): 3 tasks, 3 instances; lifetime unknown"
    rows = {line.split()[0]: line.split() for line in lines if "#" in line.split(" ")[0]}
    assert rows["t_importResponses#0"][1:3] == ["t_importResponses", "failed"]
    assert rows["t_importSubject#0"][1:3] == ["t_importSubject", "finished"]

    report = json.loads(command("show", session, *DICT, "--json"))
    assert (report["uid"], report["storage"], report["cache"]) == (session, "dict", None)
    assert "lifetime" not in report  # null would say "never expires"
    assert {row["name"]: row["status"] for row in report["instances"]}["t_importResponses#0"] == "failed"
    assert report["latestKwargs"]["questionnaireComplete"] == {"pages": 1}


def test_unresolved_names_the_failure(session):
    out = command("unresolved", session, *DICT)
    assert out.startswith(f"session {session}: 1 instance(s) need attention")
    assert "t_importResponses#0" in out and "RuntimeError: simulated failure" in out
    report = json.loads(command("unresolved", session, *DICT, "--json"))
    assert (report["storage"], report["cache"]) == ("dict", None)
    assert [(e["name"], e["reasons"]) for e in report["instances"]] == [
        ("t_importResponses#0", ["failed", "unresolved logs"])
    ]


def test_graph_of_a_session_colours_its_tasks(session):
    lines = command("graph", session, *DICT).splitlines()
    assert lines[1] == f'title: "session {session}"'
    node = {line.split('"')[1]: line.split("[")[0].strip() for line in lines if '["t_' in line}
    assert set(node) == set(WORKFLOW)
    assert f"  class {node['t_importResponses']} status_failed" in lines
    assert f"  class {node['t_importSubject']} status_finished" in lines
    assert command("graph", session, *DICT, "--format", "dot").startswith("digraph")


# --------------------------------------------------------------------------- mending


def test_replay_runs_a_clone_in_the_plugin_storage(plugin, session):
    out = command("replay", session, "t_importResponses#0", *DICT)
    assert out.splitlines() == [
        f"replayed t_importResponses#0 of session {session} as t_importResponses#1",
        "  t_importResponses#0  replayed",
        "  t_importResponses#1  finished",
    ]
    clone = plugin.DictStorageBackend(session)["t_importResponses#1"]
    assert clone.metadata["parent"] == "t_importResponses#0"


def test_skip_with_cascade(plugin, session):
    done = json.loads(
        command("skip", session, "t_importResponses#0", "--cascade", "--result", '{"page": 1}', *DICT, "--json")
    )
    assert done["instances"]["t_importResponses#0"] == {"status": "skipped"}
    storage = plugin.DictStorageBackend(session)
    assert storage["t_importResponses#0"].status == "skipped"
    assert storage.latest_kwargs["t_importResponses"] == {"page": 1}


def test_fire_schedules_and_runs(plugin, session):
    page = {"page": 2, "answers": {"q2": 5}, "userAgent": "x/1"}
    out = command("fire", session, "pageReceived", "--kwargs", json.dumps(page), *DICT)
    assert out.splitlines() == [
        f"fired pageReceived in session {session}; scheduled t_importResponses#1",
        "  t_importResponses#1  finished",
    ]
    assert plugin.DictStorageBackend(session)["t_importResponses#1"].status == "finished"


# --------------------------------------------------------------------------- dump, load, delete


def test_dump_then_load_under_another_uid(plugin, session, uid, tmp_path):
    path = tmp_path / "session.json"
    assert command("dump", session, *DICT, "--output", str(path)) == f"dumped session {session} to {path}\n"
    copy = uid + "-copy"
    try:
        out = command("load", str(path), "--uid", copy, *DICT)
        assert out == f"loaded session {copy} in storage dict: 3 tasks, 3 instances\n"
        assert state(plugin, copy) == state(plugin, session)
        dumped = json.loads(command("dump", copy, *DICT))
        assert {**dumped, "uid": session} == json.loads(path.read_text(encoding="utf-8"))
        # and the copy goes on like the original
        command("replay", copy, "t_importResponses#0", *DICT)
        assert plugin.DictStorageBackend(copy)["t_importResponses#1"].status == "finished"
    finally:
        plugin.SESSIONS.pop(copy, None)


def test_a_session_moves_from_a_cache_to_the_plugin_storage(plugin, uid, tmp_path):
    questionnaire(uid, "locmem", fail=("t_importResponses",))
    path = tmp_path / "session.json"
    command("dump", uid, "--cache", "locmem", "--output", str(path))
    try:
        assert command("load", str(path), *DICT).startswith(f"loaded session {uid} in storage dict:")
        shown = json.loads(command("show", uid, *DICT, "--json"))
        cached = json.loads(command("show", uid, "--cache", "locmem", "--json"))
        for key in ("instances", "tasks", "latestKwargs"):
            assert shown[key] == cached[key]
    finally:
        plugin.SESSIONS.pop(uid, None)


def test_load_refuses_an_existing_session_and_a_replace_it_cannot_do(plugin, session, tmp_path):
    path = tmp_path / "session.json"
    command("dump", session, *DICT, "--output", str(path))
    before = state(plugin, session)
    assert "already exists in storage 'dict'" in refused("load", str(path), *DICT)
    message = refused("load", str(path), *DICT, "--replace")
    assert "storage 'dict' cannot delete a session" in message
    assert "DictStorageBackend does not implement delete()" in message
    assert state(plugin, session) == before


def test_delete_is_refused_where_the_backend_cannot_delete(plugin, session):
    before = state(plugin, session)
    for extra in ((), ("--yes",)):
        message = refused("delete", session, *DICT, *extra)
        assert "storage 'dict' cannot delete a session" in message, message
    assert state(plugin, session) == before
    assert "nothing to delete" in refused("delete", session + "-none", *DICT, "--yes")


def test_delete_and_replace_through_a_backend_delete(plugin, deletable, uid, tmp_path):
    dict_questionnaire(plugin, uid, backend=deletable)
    where = f"session {uid!r} in storage 'dict-deletable'"
    place = ("--storage", "dict-deletable")
    path = tmp_path / "session.json"
    command("dump", uid, *place, "--output", str(path))
    try:
        assert command("load", str(path), *place, "--replace").startswith(f"replaced session {uid} in storage")
        message = refused("delete", uid, *place)
        assert f"this deletes {where} (3 tasks, 3 instances) for good; give --yes" in message
        done = json.loads(command("delete", uid, *place, "--yes", "--json"))
        assert done == {
            "uid": uid,
            "storage": "dict-deletable",
            "cache": None,
            "deleted": True,
            "tasks": 3,
            "instances": 3,
        }
        assert uid not in plugin.SESSIONS
        assert "no session" in refused("show", uid, *place)
    finally:
        plugin.SESSIONS.pop(uid, None)


# --------------------------------------------------------------------------- refusals


def test_cache_options_with_another_backend_are_refused_and_change_nothing(plugin, session, tmp_path):
    before = state(plugin, session)
    path = tmp_path / "session.json"
    path.write_text(json.dumps(json.loads(command("dump", session, *DICT))), encoding="utf-8")
    for arguments, option in (
        (["show", session, "--cache", "locmem"], "--cache"),
        (["unresolved", session, "--cache", "default"], "--cache"),
        (["replay", session, "t_importResponses#0", "--cache", "locmem"], "--cache"),
        (["replay", session, "t_importResponses#0", "--layout", "single"], "--layout"),
        (["skip", session, "t_importResponses#0", "--layout", "split"], "--layout"),
        (["fire", session, "pageReceived", "--cache", "locmem"], "--cache"),
        (["graph", session, "--cache", "locmem"], "--cache"),
        (["dump", session, "--cache", "locmem"], "--cache"),
        (["load", str(path), "--uid", session + "-2", "--cache", "locmem"], "--cache"),
        (["delete", session, "--yes", "--cache", "locmem"], "--cache"),
    ):
        message = refused(*arguments, *DICT)
        assert f"{option} is an option of the cache storage backend" in message, arguments
        assert "storage 'dict'" in message and "\n" not in message
        assert state(plugin, session) == before, arguments
    assert session + "-2" not in plugin.SESSIONS


def test_an_unknown_storage_is_refused_naming_the_known_ones(plugin, session):
    for arguments in (["show", session], ["replay", session, "t_importResponses#0"], ["delete", session, "--yes"]):
        message = refused(*arguments, "--storage", "nowhere")
        assert "no storage backend 'nowhere'" in message
        assert "registered: cache, database, dict" in message


def test_the_default_is_still_the_cache_backend(uid):
    questionnaire(uid, "locmem")
    default = command("show", uid, "--cache", "locmem")
    assert default == command("show", uid, "--cache", "locmem", "--storage", "cache")
    assert default.startswith(f"session {uid} (cache locmem):")
    report = json.loads(command("show", uid, "--cache", "locmem", "--json"))
    assert (report["storage"], report["cache"]) == ("cache", "locmem")


# --------------------------------------------------------------------------- a process of its own


def test_python_m_reaches_the_plugin_backend(plugin, uid):
    """The sessions are in another process's dict: the new process finds none,
    and says so naming the backend it asked."""
    done = python_m("show", uid, *DICT, "--settings", "tests.settings")
    assert_one_line_refusal(done, f"no session {uid!r} in storage 'dict'")
    done = python_m("delete", uid, *DICT, "--yes", "--settings", "tests.settings")
    assert_one_line_refusal(done, "nothing to delete")


def test_python_m_refuses_bad_storage_options(plugin, uid):
    # before any settings are read: none are given
    done = python_m("show", uid, "--storage", "nowhere")
    assert_one_line_refusal(done, "no storage backend 'nowhere'", "registered: cache, database, dict")
    for option in (["--cache", "locmem"], ["--layout", "single"]):
        command_line = ["replay", uid, "t#0", *DICT, *option, "--settings", "tests.settings"]
        done = python_m(*command_line)
        assert_one_line_refusal(done, f"{option[0]} is an option of the cache storage backend")
    done = python_m("show", uid, *DICT, "--cache", "redis://127.0.0.1:6379/15")
    assert_one_line_refusal(done, "--cache is an option of the cache storage backend")
