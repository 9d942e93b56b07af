"""The examples of the "Database storage" page run as shown, on each database."""

import datetime as dt

from django.utils import timezone

from tests.database.test_commands import questionnaire
from tests.ops_support import WORKFLOW, command
from tests.test_docs_snippets import python_blocks
from triggers.storages.database import DatabaseStorageBackend

PAGE = "docs/database.rst"


def test_the_pages_python_examples_run(database, uid, settings, capsys):
    settings.DATABASE_ROUTERS = []  # "default": where the routers send the example's sessions
    setting_up, queries = python_blocks(PAGE)
    exec(compile(setting_up, PAGE, "exec"), {"session_uid": uid, "WORKFLOW": WORKFLOW})
    store = DatabaseStorageBackend(uid)
    assert store.using == "default" and store.latest_kwargs["sessionStarted"] == {"subject_id": 42}
    questionnaire(DatabaseStorageBackend(uid + "-f"))  # its t_importResponses#0 fails
    midnight = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    namespace = {"midnight": midnight}
    exec(compile(queries, PAGE, "exec"), namespace)
    assert uid + "-f" in set(namespace["failed"].values_list("uid", flat=True))
    assert f"{uid}-f 1 " in capsys.readouterr().out
    assert namespace["today"].filter(uid=uid).exists()
    assert not namespace["stuck"].exists()


def test_the_pages_list_example_looks_as_shown(database, uid):
    questionnaire(DatabaseStorageBackend(uid, using=database))
    text = command("list", "--failed", "--using", database)
    header, rule, *rows, footer = text.splitlines()
    assert header.split() == ["uid", "instances", "failed", "unresolved", "waiting", "last", "modified", "expires"]
    assert set(rule.replace(" ", "")) == {"-"}
    assert any(row.split()[0] == uid and row.split()[2] == "1" for row in rows), rows
    assert footer.startswith("page 1 of 1 (")
    assert dt.datetime.fromisoformat(rows[0].split()[5] + "T" + rows[0].split()[6])
