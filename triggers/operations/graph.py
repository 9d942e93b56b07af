"""``graph``: a workflow drawn as Mermaid or Graphviz DOT.

Tasks are boxes and the triggers that are not tasks rounded shapes; an edge
goes from a trigger to each task that waits for it: solid for ``after``,
thick for ``andEvery`` and dashed, labelled "unless", for ``unless``. Given
the statuses of a session, each task is coloured by the status an operator
needs to see: failed if one of its instances is, else its latest instance's;
with a legend of the colours used.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from ..errors import InvalidTaskConfig
from ..storages.base import BaseTriggerStorage
from ..types import TaskConfig, TaskInstance
from .common import BadInput, instance_order, parse_json
from .terminal import printable

__all__ = ["FORMATS", "configs_from_file", "task_statuses", "render"]

FORMATS = ("mermaid", "dot")

#: fill and border colour of a task of that status
COLOURS: dict[str, tuple[str, str]] = {
    TaskInstance.STATUS_UNSTARTED: ("#eeeeee", "#9e9e9e"),
    TaskInstance.STATUS_SCHEDULED: ("#fff3cd", "#b8860b"),
    TaskInstance.STATUS_RUNNING: ("#cfe2ff", "#1f5fbf"),
    TaskInstance.STATUS_FINISHED: ("#d1e7dd", "#2e7d32"),
    TaskInstance.STATUS_FAILED: ("#f8d7da", "#c62828"),
    TaskInstance.STATUS_SKIPPED: ("#ffe5cc", "#e65100"),
    TaskInstance.STATUS_REPLAYED: ("#e8dcf5", "#6a1b9a"),
    TaskInstance.STATUS_ABANDONED: ("#f5f5f5", "#bdbdbd"),
}
NO_INSTANCE = "no instance"
COLOURS[NO_INSTANCE] = ("#ffffff", "#616161")

EDGE_AFTER, EDGE_EVERY, EDGE_UNLESS = "after", "andEvery", "unless"


def configs_from_file(path: str) -> list[TaskConfig]:
    """The tasks of a JSON task configuration (what ``update_configuration`` takes)."""
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:  # not UTF-8
        raise BadInput(f"{path} is not valid JSON: {exc}") from None
    definitions = parse_json(text, path)
    if not isinstance(definitions, dict) or not definitions:
        raise BadInput(f"{path} must hold a JSON object of task definitions by task name")
    try:
        return [TaskConfig.from_definition(name, d) for name, d in definitions.items()]
    except (InvalidTaskConfig, TypeError) as exc:
        raise BadInput(f"{path}: {exc}") from None


#: what the legend says the colours are
LEGEND = "status (failed if an instance is, else the latest)"


def task_statuses(storage: BaseTriggerStorage) -> dict[str, str]:
    """Each task's name and its status: failed if one of its instances is,
    else its latest instance's (or "no instance")."""
    statuses = {}
    for name in storage.tasks:
        instances = storage.instances_of_task(name)
        if any(i.status == TaskInstance.STATUS_FAILED for i in instances.values()):
            statuses[name] = TaskInstance.STATUS_FAILED
        elif instances:
            latest = max(instances, key=instance_order)
            statuses[name] = instances[latest].status
        else:
            statuses[name] = NO_INSTANCE
    return statuses


def _edges(configs: list[TaskConfig]) -> list[tuple[str, str, str]]:
    """(trigger, task, kind) for every edge, in a stable order."""
    edges = []
    for config in sorted(configs, key=lambda c: c.name):
        for trigger in sorted(config.after):
            kind = EDGE_EVERY if trigger == config.and_every else EDGE_AFTER
            edges.append((trigger, config.name, kind))
        for trigger in sorted(config.unless):
            edges.append((trigger, config.name, EDGE_UNLESS))
    return edges


def _nodes(configs: list[TaskConfig]) -> tuple[list[str], list[str]]:
    """Task names, and the names of triggers that are not tasks."""
    tasks = sorted(c.name for c in configs)
    names = set(tasks)
    triggers = sorted({t for c in configs for t in c.after | c.unless} - names)
    return tasks, triggers


#: what a Mermaid label must not hold as it is, and its entity code: ``#`` first
#: (entity codes start with it), then what could end the label or start a
#: directive (``%%{init: ...}%%``), HTML, or a Markdown string
_MERMAID_ENTITIES = {
    "#": "#35;",
    '"': "#quot;",
    "%": "#37;",
    "<": "#60;",
    ">": "#62;",
    "&": "#38;",
    "`": "#96;",
}
_MERMAID_UNSAFE = re.compile("[" + re.escape("".join(_MERMAID_ENTITIES)) + "]")


def _mermaid_text(text: str) -> str:
    """A name as a quoted Mermaid label: printable, and nothing in it Mermaid reads."""
    return '"' + _MERMAID_UNSAFE.sub(lambda m: _MERMAID_ENTITIES[m.group()], printable(text)) + '"'


def _mermaid_title(title: str) -> str:
    """The title as a YAML string of the front matter: JSON's escapes are YAML's,
    and ``%``, ``<`` and ``>`` as escapes leave Mermaid nothing to read."""
    quoted = json.dumps(printable(title))
    return quoted.replace("%", "\\u0025").replace("<", "\\u003c").replace(">", "\\u003e")


def _mermaid(configs: list[TaskConfig], statuses: Mapping[str, str] | None, title: str) -> str:
    tasks, triggers = _nodes(configs)
    ids = {name: f"n{n}" for n, name in enumerate(tasks + triggers)}
    lines = ["---", f"title: {_mermaid_title(title)}", "---", "flowchart LR"]
    lines += [f"  {ids[t]}([{_mermaid_text(t)}])" for t in triggers]
    lines += [f"  {ids[t]}[{_mermaid_text(t)}]" for t in tasks]
    arrows = {EDGE_AFTER: "-->", EDGE_EVERY: "== every ==>", EDGE_UNLESS: "-. unless .->"}
    lines += [f"  {ids[src]} {arrows[kind]} {ids[dst]}" for src, dst, kind in _edges(configs)]
    if statuses:
        used = [s for s in COLOURS if s in statuses.values()]
        for status in used:
            fill, stroke = COLOURS[status]
            lines.append(f"  classDef {_css(status)} fill:{fill},stroke:{stroke},color:#000")
        for task in tasks:
            if task in statuses:
                lines.append(f"  class {ids[task]} {_css(statuses[task])}")
        lines.append(f'  subgraph legend["{LEGEND}"]')
        lines += [f"    legend_{_css(s)}[{_mermaid_text(s)}]:::{_css(s)}" for s in used]
        lines.append("  end")
    return "\n".join(lines) + "\n"


def _css(status: str) -> str:
    return "status_" + status.replace(" ", "_")


def _dot_text(text: str) -> str:
    """A name as a quoted DOT ID: printable, its backslashes and quotes escaped.

    A quoted ID cannot hold HTML (that takes ``<...>`` in place of quotes) and
    the shapes drawn read no record fields, so this is all DOT needs.
    """
    escaped = printable(text).replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped + '"'


def _dot(configs: list[TaskConfig], statuses: Mapping[str, str] | None, title: str) -> str:
    tasks, triggers = _nodes(configs)
    lines = [
        f"digraph {_dot_text(title)} {{",
        "  rankdir=LR;",
        f"  label={_dot_text(title)}; labelloc=t; fontname=\"Helvetica\";",
        '  node [fontname="Helvetica"]; edge [fontname="Helvetica"];',
    ]
    lines += [f"  {_dot_text(t)} [shape=ellipse];" for t in triggers]
    for task in tasks:
        style = "shape=box"
        if statuses and task in statuses:
            fill, stroke = COLOURS[statuses[task]]
            style += f', style="rounded,filled", fillcolor="{fill}", color="{stroke}"'
        lines.append(f"  {_dot_text(task)} [{style}];")
    attrs = {
        EDGE_AFTER: "",
        EDGE_EVERY: ' [style=bold, penwidth=3, label="every"]',
        EDGE_UNLESS: ' [style=dashed, label="unless"]',
    }
    lines += [f"  {_dot_text(s)} -> {_dot_text(d)}{attrs[k]};" for s, d, k in _edges(configs)]
    if statuses:
        lines += ["  subgraph cluster_legend {", f"    label={_dot_text(LEGEND)};"]
        for status in (s for s in COLOURS if s in statuses.values()):
            fill, stroke = COLOURS[status]
            lines.append(
                f"    {_dot_text('legend: ' + status)} [label={_dot_text(status)}, shape=box,"
                f' style="rounded,filled", fillcolor="{fill}", color="{stroke}"];'
            )
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(
    configs: list[TaskConfig],
    fmt: str = "mermaid",
    statuses: Mapping[str, str] | None = None,
    title: str = "workflow",
) -> str:
    """The workflow of ``configs`` as Mermaid or DOT text."""
    if not configs:
        raise BadInput("there are no tasks to draw")
    drawer: Any = _mermaid if fmt == "mermaid" else _dot
    text: str = drawer(configs, statuses, title)
    return text
