"""``triggers graph``: workflows as Mermaid and as Graphviz DOT."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import prepare_cache
from tests.ops_support import (
    WORKFLOW,
    add_stuck_instance,
    assert_one_line_refusal,
    command,
    python_m,
    questionnaire,
    refused,
)


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "workflow.json"
    path.write_text(json.dumps(WORKFLOW))
    return str(path)


def mermaid_ids(text):
    """Node label -> Mermaid id, from the node lines."""
    return {label: node for node, label in re.findall(r'^  (n\d+)[(\[]+"([^"]+)"', text, re.M)}


def test_mermaid_of_a_configuration(config_file):
    text = command("graph", "--config", config_file)
    assert text.startswith("---\n") and "\nflowchart LR\n" in text
    ids = mermaid_ids(text)
    assert set(ids) == {
        "t_importSubject",
        "t_importResponses",
        "t_importBrowserMetadata",
        "firstPageReceived",
        "questionnaireComplete",
        "pageReceived",
        "isEmbeddedApplication",
    }
    # Triggers that are not tasks are stadiums, tasks boxes.
    assert f'  {ids["pageReceived"]}(["pageReceived"])' in text
    assert f'  {ids["t_importSubject"]}["t_importSubject"]' in text
    edges = set(re.findall(r"^  (n\d+) (.+?) (n\d+)$", text, re.M))
    name = {node: label for label, node in ids.items()}
    labelled = {(name[a], arrow, name[b]) for a, arrow, b in edges}
    assert labelled == {
        ("firstPageReceived", "-->", "t_importSubject"),
        ("questionnaireComplete", "-->", "t_importSubject"),
        ("t_importSubject", "-->", "t_importResponses"),
        ("pageReceived", "== every ==>", "t_importResponses"),
        ("t_importSubject", "-->", "t_importBrowserMetadata"),
        ("pageReceived", "-->", "t_importBrowserMetadata"),
        ("isEmbeddedApplication", "-. unless .->", "t_importBrowserMetadata"),
    }
    assert "classDef" not in text and "legend" not in text  # no session, no colours


def test_dot_of_a_configuration(config_file):
    text = command("graph", "--config", config_file, "--format", "dot")
    assert text.startswith("digraph ") and text.rstrip().endswith("}")
    assert '  "pageReceived" [shape=ellipse];' in text
    assert '  "t_importSubject" [shape=box];' in text
    assert '  "firstPageReceived" -> "t_importSubject";' in text
    assert '  "pageReceived" -> "t_importResponses" [style=bold, penwidth=3, label="every"];' in text
    assert '  "isEmbeddedApplication" -> "t_importBrowserMetadata" [style=dashed, label="unless"];' in text
    assert '  "pageReceived" -> "t_importBrowserMetadata";' in text
    assert text.count("{") == text.count("}")


@pytest.mark.parametrize("alias", ["locmem", "redis"])
def test_a_session_is_coloured_by_the_status_each_task_needs_seen(request, uid, alias):
    from triggers import TriggerManager
    from triggers.storages.cache import CacheStorageBackend

    prepare_cache(request, alias)
    questionnaire(uid, alias, fail=("t_importResponses",))
    text = command("graph", uid, "--cache", alias)
    ids = mermaid_ids(text)
    assert f"  class {ids['t_importSubject']} status_finished" in text
    assert f"  class {ids['t_importResponses']} status_failed" in text
    assert "  classDef status_failed fill:#f8d7da" in text
    assert 'legend_status_failed["failed"]:::status_failed' in text
    assert 'legend_status_finished["finished"]:::status_finished' in text
    assert "status_running" not in text  # the legend shows the colours in use

    # A failure outranks a later instance: the operator must see it.
    add_stuck_instance(uid, alias, status="running")  # now the latest t_importResponses instance
    dot = command("graph", uid, "--cache", alias, "--format", "dot")
    assert '"t_importResponses" [shape=box, style="rounded,filled", fillcolor="#f8d7da"' in dot
    # Once the failure is mended, the latest instance's status shows.
    manager = TriggerManager(CacheStorageBackend(uid, cache=alias))
    for instance in list(manager.storage.instances_of_task("t_importResponses").values()):
        if instance.status == "failed":
            manager.skip_failed_instance(instance)
    dot = command("graph", uid, "--cache", alias, "--format", "dot")
    assert '"t_importResponses" [shape=box, style="rounded,filled", fillcolor="#cfe2ff"' in dot
    assert "subgraph cluster_legend {" in dot and '[label="running"' in dot


def test_a_task_with_no_instance_has_a_colour_of_its_own(uid):
    from triggers import TriggerManager
    from triggers.storages.cache import CacheStorageBackend

    TriggerManager(CacheStorageBackend(uid, cache="locmem")).update_configuration(WORKFLOW)
    text = command("graph", uid, "--cache", "locmem")
    assert 'legend_status_no_instance["no instance"]:::status_no_instance' in text


def test_names_are_quoted(tmp_path):
    path = tmp_path / "odd.json"
    path.write_text(json.dumps({'say "hi"': {"after": ['a\\b "c"'], "run": "x"}}))
    assert '"a\\\\b \\"c\\"" -> "say \\"hi\\"";' in command("graph", "--config", str(path), "--format", "dot")
    assert '["say #quot;hi#quot;"]' in command("graph", "--config", str(path))


def test_graph_refuses_bad_input(tmp_path, uid):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    invalid = tmp_path / "invalid.json"
    invalid.write_text(json.dumps({"t": {"after": "start", "run": 3}}))
    assert "give a session UID or --config FILE" in refused("graph", "--cache", "locmem")
    assert "give a session UID or --config FILE" in refused("graph", uid, "--config", str(broken))
    assert "is not valid JSON" in refused("graph", "--config", str(broken))
    assert "invalid configuration for task 't'" in refused("graph", "--config", str(invalid))
    assert "cannot read" in refused("graph", "--config", str(tmp_path / "missing.json"))
    assert "no session" in refused("graph", uid, "--cache", "locmem")
    assert "invalid choice: 'svg'" in refused("graph", uid, "--format", "svg")


def test_graph_of_a_file_needs_no_settings(config_file):
    done = python_m("graph", "--config", config_file, "--format", "dot")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f'digraph "{config_file}" {{')
    assert_one_line_refusal(python_m("graph", "--config", config_file + ".missing"), "cannot read")
