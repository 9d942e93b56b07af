"""The operator commands against hostile stored data and hostile input.

Stored text (names, error messages, tracebacks, kwargs) reaches the terminal
with its control characters escaped, Mermaid and DOT output cannot be broken
out of, JSON output stays valid JSON, and input the storage cannot hold or
the decoder cannot read is refused with exit status 2 and one line.
"""

from __future__ import annotations

import json
import re
import uuid

import pytest

from tests.conftest import prepare_cache, require_service
from tests.ops_support import (
    assert_one_line_refusal,
    command,
    python_m,
    questionnaire,
    refused,
    stored,
)
from triggers import CacheStorageBackend, TriggerManager, demo

TITLE = "\x1b]0;title\x07"  # sets the terminal window's title
CLEAR = "\x1b[2J"  # clears the screen
#: a task whose (real) failure carries both, with a C1 CSI, DEL and a tab
TASK = f"t_evil{TITLE}{CLEAR}\x9b1m\x7f\t"
#: a trigger name with a newline, a Mermaid directive, HTML, quotes and NEL (C1)
TRIGGER = 'go\n%%{init: {"theme": "dark"}}%%<img src=x onerror=alert(1)>"`#quot;&\x85'
KWARGS = {"note": f"{CLEAR}\x9b\x85\x7f\ud800", f"key{TITLE}": [1]}

TASK_SHOWN = r"t_evil\x1b]0;title\x07\x1b[2J\x9b1m\x7f\x09"
TRIGGER_SHOWN = r'go\x0a%%{init: {"theme": "dark"}}%%<img src=x onerror=alert(1)>"`#quot;&\x85'
#: the start of the error message (the text output cuts long lines)
ERROR_SHOWN = f"RuntimeError: simulated failure of {TASK_SHOWN}#0 (--fail "
TRIGGER_MERMAID = (
    r"go\x0a#37;#37;{init: {#quot;theme#quot;: #quot;dark#quot;}}#37;#37;"
    r"#60;img src=x onerror=alert(1)#62;#quot;#96;#35;quot;#38;\x85"
)

#: what must never reach a terminal (the newline aside: the commands lay out lines)
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
#: far deeper than json.loads goes, yet short enough for one command-line argument
DEEP = "[" * 20_000 + "]" * 20_000


def assert_printable(text: str) -> None:
    assert not RAW.search(text), sorted(set(RAW.findall(text)))


def hostile(uid: str, alias: str) -> str:
    """A session whose names, error and kwargs carry control characters: the
    task fails for real (the demo's simulated failure names the instance)."""
    demo.FAIL_FIRST_RUN.clear()
    demo.FAIL_FIRST_RUN.add(TASK)
    try:
        manager = TriggerManager(CacheStorageBackend(uid, cache=alias))
        definition = {"after": [TRIGGER], "run": "triggers.demo.import_subject", "using": "sync"}
        manager.update_configuration({TASK: definition})
        manager.fire(TRIGGER, KWARGS)
    finally:
        demo.FAIL_FIRST_RUN.clear()
    assert CacheStorageBackend(uid, cache=alias)[f"{TASK}#0"].status == "failed"
    return uid


@pytest.fixture(params=["locmem", "redis"])
def alias(request):
    return prepare_cache(request, request.param)


@pytest.fixture
def redis_hostile(uid):
    require_service("redis")
    return hostile(uid, "redis")


def on_redis(*args: str):
    return python_m(*args, "--settings", "tests.settings", "--cache", "redis")


# --------------------------------------------------------------------------- text output


def test_show_prints_stored_control_characters_as_escapes(uid, alias):
    out = command("show", hostile(uid, alias), "--cache", alias)
    assert_printable(out)
    lines = out.splitlines()
    row = next(line for line in lines if line.startswith(f"{TASK_SHOWN}#0 "))
    assert row.split()[1:3] == [TASK_SHOWN, "failed"]
    # The error with its message, escaped before it is cut to fit.
    assert "  RuntimeError: simulated failure of t_evil\\x1b]0" in row and row.endswith("...")
    task = next(line for line in lines if line.startswith(f"{TASK_SHOWN} "))
    assert TRIGGER_SHOWN in task
    latest = lines[lines.index("latest kwargs (cut to fit; --json shows them whole)") + 1]
    assert latest.startswith(r"  go\x0a%%{init:")


def test_unresolved_prints_the_stored_error_as_escapes(uid, alias):
    out = command("unresolved", hostile(uid, alias), "--cache", alias)
    assert_printable(out)
    lines = out.splitlines()
    row = lines.index(next(line for line in lines if line.startswith(f"{TASK_SHOWN}#0 ")))
    assert lines[row].split()[1:] == ["failed", "failed;", "logs", "unresolved", "(ERROR)"]
    assert lines[row + 1].strip().startswith(ERROR_SHOWN)


def test_show_and_unresolved_in_a_process_of_their_own(redis_hostile):
    for name in ("show", "unresolved"):
        done = on_redis(name, redis_hostile)
        assert done.returncode == 0, done.stderr
        assert_printable(done.stdout)
        assert TASK_SHOWN in done.stdout
    assert ERROR_SHOWN in done.stdout


# --------------------------------------------------------------------------- JSON output


def test_json_output_is_valid_json_that_gives_back_the_stored_text(uid):
    hostile(uid, "locmem")
    shown = command("show", uid, "--cache", "locmem", "--json")
    assert_printable(shown)
    report = json.loads(shown)
    assert [task["name"] for task in report["tasks"]] == [TASK]
    assert report["tasks"][0]["after"] == [TRIGGER]
    assert report["latestKwargs"][TRIGGER] == KWARGS
    listed = command("unresolved", uid, "--cache", "locmem", "--json")
    assert_printable(listed)
    error = json.loads(listed)["instances"][0]["error"]["message"]
    assert error == f"RuntimeError: simulated failure of {TASK}#0 (--fail {TASK})"


def test_json_output_in_a_process_of_its_own(redis_hostile):
    done = on_redis("show", redis_hostile, "--json")
    assert done.returncode == 0, done.stderr
    assert_printable(done.stdout)
    assert json.loads(done.stdout)["latestKwargs"][TRIGGER] == KWARGS


def test_a_dump_on_standard_output_is_json_with_escapes(redis_hostile):
    for text in (
        on_redis("dump", redis_hostile).stdout,
        command("dump", redis_hostile, "--cache", "redis"),
    ):
        assert_printable(text)
        document = json.loads(text)
        assert document["metas"]["latest_kwargs"][TRIGGER] == KWARGS
        assert list(document["tasks"]) == [TASK]


# --------------------------------------------------------------------------- graph


def test_mermaid_labels_cannot_carry_directives_or_html(uid):
    text = command("graph", hostile(uid, "locmem"), "--cache", "locmem")
    assert_printable(text)
    assert f'(["{TRIGGER_MERMAID}"])' in text
    assert f'["{TASK_SHOWN}"]' in text
    assert "%" not in text and "<" not in text
    assert ">" not in re.sub(r"-->|==>|\.->", "", text)  # only the arrows have one
    for line in text.splitlines():
        assert line.count('"') in (0, 2), line  # every label ends where it was opened


def test_a_mermaid_title_cannot_carry_a_directive(tmp_path):
    path = tmp_path / 'flow %%{init: {"theme": "dark"}}%% <b>.json'
    path.write_text(json.dumps({"t": {"after": ["start"], "run": "x"}}))
    for text in (
        command("graph", "--config", str(path)),
        python_m("graph", "--config", str(path)).stdout,
    ):
        title = text.splitlines()[1]
        assert title.startswith("title: ")
        assert not set("%<>") & set(title), title
        assert json.loads(title[len("title: ") :]) == str(path)  # JSON's escapes are YAML's


def dot_id(shown: str) -> str:
    return '"' + shown.replace("\\", "\\\\").replace('"', '\\"') + '"'


def test_dot_quotes_hostile_names_on_one_line(uid, tmp_path):
    edge = f"  {dot_id(TRIGGER_SHOWN)} -> {dot_id(TASK_SHOWN)};"
    text = command("graph", hostile(uid, "locmem"), "--cache", "locmem", "--format", "dot")
    assert_printable(text)
    assert edge in text.splitlines()
    config = tmp_path / "hostile.json"
    config.write_text(json.dumps({TASK: {"after": [TRIGGER], "run": "x"}}))
    done = python_m("graph", "--config", str(config), "--format", "dot")
    assert done.returncode == 0, done.stderr
    assert_printable(done.stdout)
    assert edge in done.stdout.splitlines()


# --------------------------------------------------------------------------- refusals


def test_a_refusal_naming_stored_names_is_one_printable_line(uid, alias):
    hostile(uid, alias)
    message = refused("replay", uid, "nope#1", "--cache", alias)
    assert_printable(message)
    assert "\n" not in message and f"{TASK_SHOWN}#0" in message
    message = refused("fire", uid, "nope", "--cache", alias)
    assert "\n" not in message and TRIGGER_SHOWN in message


def test_a_refusal_in_a_process_of_its_own(redis_hostile):
    for args, name in (
        (("replay", redis_hostile, "nope#1"), f"{TASK_SHOWN}#0"),
        (("fire", redis_hostile, "nope"), TRIGGER_SHOWN),
    ):
        done = on_redis(*args)
        assert_printable(assert_one_line_refusal(done, name))
        assert done.stderr.count("\n") == 1


@pytest.mark.parametrize("option", ["nan", "inf", "+nan", "-nan", "1e999", "Infinity"])
def test_older_than_must_be_a_finite_number(uid, option):
    questionnaire(uid, "locmem")
    assert "--older-than" in refused(
        "unresolved", uid, "--older-than=" + option, "--cache", "locmem"
    )


def test_older_than_nan_in_a_process_of_its_own(uid):
    require_service("redis")
    questionnaire(uid, "redis")
    for option in ("nan", "inf", "-inf"):
        assert_one_line_refusal(
            on_redis("unresolved", uid, "--older-than=" + option), "--older-than"
        )


# --------------------------------------------------------------------------- JSON input


def deep_inputs(uid: str, deep_file: str) -> list[list[str]]:
    """Commands given JSON nested far deeper than json.loads goes."""
    return [
        ["fire", uid, "pageReceived", "--kwargs", '{"a": ' + DEEP + "}"],
        ["replay", uid, "t_importResponses#0", "--kwargs", '{"a": ' + DEEP + "}"],
        ["skip", uid, "t_importResponses#0", "--cascade", "--result", '{"a": ' + DEEP + "}"],
        ["graph", "--config", deep_file],
        ["load", deep_file, "--uid", "copy-" + uid],
    ]


def test_json_nested_too_deeply_is_bad_input(uid, tmp_path, alias):
    questionnaire(uid, alias, fail=("t_importResponses",))
    deep_file = tmp_path / "deep.json"
    deep_file.write_text('{"format": "triggers-session", "tasks": ' + DEEP + "}")
    before = stored(uid, alias)
    for args in deep_inputs(uid, str(deep_file)):
        message = refused(*args, "--cache", alias)
        assert "too deeply" in message and "\n" not in message, args
        assert stored(uid, alias) == before
    assert stored("copy-" + uid, alias) == {}


def test_json_nested_too_deeply_in_a_process_of_its_own(uid, tmp_path):
    require_service("redis")
    questionnaire(uid, "redis", fail=("t_importResponses",))
    deep_file = tmp_path / "deep.json"
    deep_file.write_text(DEEP)
    before = stored(uid, "redis")
    for args in deep_inputs(uid, str(deep_file)):
        done = on_redis(*args)
        assert_one_line_refusal(done, "too deeply")
        assert stored(uid, "redis") == before
    assert stored("copy-" + uid, "redis") == {}


# --------------------------------------------------------------------------- load


def dump_of(uid: str) -> dict:
    questionnaire(uid, "locmem", fail=("t_importResponses",))
    return json.loads(command("dump", uid, "--cache", "locmem"))


def rename(mapping: dict, old: str, new: str) -> None:
    mapping[new] = mapping.pop(old)


LONE = "\ud800"
SURROGATE_NAMES = {
    "instance name": lambda d: rename(
        d["instances"], "t_importSubject#0", "t_importSubject#" + LONE
    ),
    "abandonState": lambda d: d["instances"]["t_importSubject#0"].update(abandonState=["x" + LONE]),
    "kwargs": lambda d: rename(
        d["instances"]["t_importSubject#0"]["kwargs"], "firstPageReceived", LONE
    ),
    "metadata key": lambda d: d["instances"]["t_importSubject#0"]["metadata"].update({LONE: 1}),
    "parent": lambda d: d["instances"]["t_importSubject#0"]["metadata"].update(parent="p" + LONE),
    "session metadata key": lambda d: d["metas"].update({"k" + LONE: 1}),
    "latest_kwargs": lambda d: rename(d["metas"]["latest_kwargs"], "pageReceived", LONE),
}


@pytest.mark.parametrize("where", sorted(SURROGATE_NAMES))
def test_load_refuses_a_name_no_storage_can_hold(uid, tmp_path, where):
    document = dump_of(uid)
    SURROGATE_NAMES[where](document)
    path = tmp_path / "dump.json"
    path.write_text(json.dumps(document))  # "\ud800" as JSON writes it
    target = "target-" + uuid.uuid4().hex
    message = refused("load", str(path), "--uid", target, "--cache", "locmem")
    assert "\\ud800" in message and "lone surrogate" in message and "\n" not in message
    assert where.split()[0] in message
    assert stored(target, "locmem") == {}


def test_load_refuses_values_nested_deeper_than_a_session_holds(uid, tmp_path):
    document = dump_of(uid)
    document["metas"]["latest_kwargs"]["pageReceived"] = json.loads("[" * 600 + "]" * 600)
    path = tmp_path / "dump.json"
    path.write_text(json.dumps(document))
    target = "target-" + uuid.uuid4().hex
    message = refused("load", str(path), "--uid", target, "--cache", "locmem")
    assert "nests values" in message and "\n" not in message
    assert stored(target, "locmem") == {}


def test_load_refuses_a_lone_surrogate_in_a_process_of_its_own(uid, tmp_path):
    require_service("redis")
    document = dump_of(uid)
    SURROGATE_NAMES["instance name"](document)
    path = tmp_path / "dump.json"
    path.write_text(json.dumps(document))
    target = "target-" + uuid.uuid4().hex
    assert_one_line_refusal(
        on_redis("load", str(path), "--uid", target), "\\ud800", "instance name"
    )
    assert stored(target, "redis") == {}
