"""Reading the code blocks of a docs page, and comparing the output a page shows
with the output a command gives (timestamps and ages aside)."""

from __future__ import annotations

import re

#: what changes from run to run: times (as tables and as ISO text) and ages
VARYING = [
    (re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?(\+00:00)?"), "<time>"),
    (re.compile(r"\b\d+(h \d\dm|m \d\ds|s)\b"), "<age>"),
    # the seconds a session has left to live, as show prints them
    (re.compile(r"\(in \d+ s\)"), "(in <seconds> s)"),
    (re.compile(r'"expiresIn": [\d.]+'), '"expiresIn": <seconds>'),
]


def _indented(lines, start):
    """The block of lines indented by three spaces from ``start`` on, dedented."""
    body = []
    for line in lines[start:]:
        if line and not line.startswith("   "):
            break
        body.append(line[3:])
    return "\n".join(body).strip("\n") + "\n"


def page_blocks(page):
    """(kind, caption, body) of every code block of an reST page, in order."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks = []
    for n, line in enumerate(lines):
        if line.startswith(".. code-block::"):
            kind = line.split("::", 1)[1].strip()
            caption, body_at = None, n + 1
            if lines[body_at].startswith("   :caption:"):
                caption = lines[body_at].split(":caption:", 1)[1].strip()
                body_at += 1
            blocks.append((kind, caption, _indented(lines, body_at + 1)))
        elif line.endswith("prints::"):
            blocks.append(("output", None, _indented(lines, n + 2)))
    return blocks


def console_commands(blocks):
    """(command, expected output) of each ``$`` line of the console blocks."""
    found = []
    for kind, _, body in blocks:
        if kind != "console":
            continue
        for chunk in re.split(r"^\$ ", body, flags=re.M)[1:]:
            command, _, output = chunk.partition("\n")
            found.append((command, output))
    return found


def normalized(text):
    lines = []
    for line in text.strip("\n").splitlines():
        for pattern, placeholder in VARYING:
            line = pattern.sub(placeholder, line)
        lines.append(line.rstrip())
    return lines
