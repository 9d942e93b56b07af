"""The admin (triggers.admin) through Django's test client, on each database.

The default admin site reads the "default" database; tests/urls.py mounts
a site of its own for each other one (register(site, using=alias)).
"""

import re
import uuid

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission

from tests.admin_support import ago, expire, flaky_session, session_with, waiting
from triggers.models import Instance, Session
from triggers.operations.redispatch import WORKER_LOST
from triggers.storages.database import DatabaseStorageBackend

PREFIX = {"default": "/admin/", "pg": "/admin-pg/", "maria": "/admin-maria/"}


@pytest.fixture
def site(database, client, django_user_model):
    """The admin's URL prefix for the database, with a superuser logged in."""
    user = django_user_model.objects.create_superuser("boss", "boss@example.com", "pw")
    client.force_login(user)
    return PREFIX[database]


@pytest.fixture
def uid():
    return "adm-" + uuid.uuid4().hex[:12]


def rows(database, uid):
    """``{name: status}`` of a session's instances, as stored."""
    return dict(
        Instance.objects.using(database).filter(session__uid=uid).values_list("name", "status")
    )


def instance_pk(database, uid, name):
    return Instance.objects.using(database).get(session__uid=uid, name=name).pk


def act(client, site, action, *pks):
    """Run an action of the instance list on ``pks``; the messages it left."""
    response = client.post(
        site + "triggers/instance/",
        {"action": action, ACTION_CHECKBOX_NAME: [str(pk) for pk in pks]},
        follow=True,
    )
    assert response.status_code == 200
    return [(m.level_tag, str(m)) for m in response.context["messages"]]


def listed(response):
    """The uids or instance names in a changelist page (the row links' texts)."""
    return re.findall(r'<th class="field-\w+"><a href="[^"]+">([^<]*)</a>', response.content.decode())


# ----------------------------------------------------------------- sessions


def test_sessions_listed_with_counts_and_expired_ones_hidden(client, site, database, uid):
    flaky_session(uid + "-f", database)
    session_with(uid + "-ok", database, {"status": "finished"})
    session_with(uid + "-gone", database, {"status": "failed"})
    expire(uid + "-gone", database)
    response = client.get(site + "triggers/session/")
    assert response.status_code == 200
    assert set(listed(response)) == {uid + "-f", uid + "-ok"}
    page = response.content.decode()
    pk = Session.objects.using(database).get(uid=uid + "-f").pk
    # flaky#0 failed; after_flaky has no instance yet: 1 instance, 1 failed, 1 unresolved.
    assert f"?session__id__exact={pk}&amp;status=failed" in page
    assert ">1 instance</a>" in page


@pytest.mark.parametrize(
    "query, expected",
    [
        ("failed=yes", {"-f"}),
        ("unresolved=yes", {"-f", "-stuck", "-new"}),
        ("stuck=300", {"-stuck"}),
        ("stuck=86400", set()),
        ("q=-stuc", {"-stuck"}),
        ("", {"-f", "-ok", "-stuck", "-new"}),
    ],
)
def test_session_filters_and_search(client, site, database, uid, query, expected):
    flaky_session(uid + "-f", database)
    session_with(uid + "-ok", database, {"status": "finished"})
    session_with(uid + "-stuck", database, waiting("running", ago(hours=2)))
    session_with(uid + "-new", database, waiting("scheduled", ago(seconds=5)))
    response = client.get(site + "triggers/session/?" + query)
    assert response.status_code == 200
    assert set(listed(response)) == {uid + suffix for suffix in expected}


def test_session_last_modified_filter(client, site, database, uid):
    session_with(uid, database, {"status": "finished"})
    today = client.get(site + "triggers/session/?modified__gte=2000-01-01T00:00:00%2B00:00")
    assert listed(today) == [uid]
    past = client.get(site + "triggers/session/?modified__lt=2000-01-01T00:00:00%2B00:00")
    assert listed(past) == []


def test_a_value_not_among_a_filters_choices_is_refused(client, site, database, uid):
    session_with(uid, database, {"status": "finished"})
    response = client.get(site + "triggers/session/?stuck=forever")
    assert response.status_code == 302 and response["Location"].endswith("?e=1")


def test_session_page_is_read_only(client, site, database, uid):
    flaky_session(uid, database)
    pk = Session.objects.using(database).get(uid=uid).pk
    page = client.get(f"{site}triggers/session/{pk}/change/")
    assert page.status_code == 200
    text = page.content.decode()
    assert uid in text and "flaky" in text and "latest_kwargs" in text
    assert 'name="_save"' not in text and 'name="_continue"' not in text  # view only
    assert client.post(f"{site}triggers/session/{pk}/change/", {"uid": "x"}).status_code == 403
    assert client.get(f"{site}triggers/session/add/").status_code == 403
    assert client.post(f"{site}triggers/session/{pk}/delete/", {"post": "yes"}).status_code == 403
    assert Session.objects.using(database).filter(uid=uid).exists()


# ----------------------------------------------------------------- instances


@pytest.mark.parametrize(
    "query, expected",
    [
        ("status=failed", {"flaky#0"}),
        ("task=other", {"other#0"}),
        ("error_type=builtins.ValueError", {"flaky#0"}),
        ("log_level=40", {"flaky#0"}),
        ("log_level=10", {"flaky#0"}),
        ("stuck=3600", {"other#0"}),
        ("logs_resolved__exact=0", {"flaky#0"}),
    ],
)
def test_instance_filters(client, site, database, uid, query, expected):
    flaky_session(uid, database)
    session_with(
        uid + "-b",
        database,
        {"status": "finished"},
        {"task": "other", **waiting("scheduled", ago(hours=3))},
    )
    response = client.get(f"{site}triggers/instance/?q={uid}&{query}")
    assert response.status_code == 200
    assert set(listed(response)) == expected


def test_instances_of_one_session_and_search(client, site, database, uid):
    flaky_session(uid, database)
    session_with(uid + "-b", database, {"status": "finished"})
    pk = Session.objects.using(database).get(uid=uid).pk
    assert listed(client.get(f"{site}triggers/instance/?session__id__exact={pk}")) == ["flaky#0"]
    assert set(listed(client.get(f"{site}triggers/instance/?q={uid}"))) == {"flaky#0", "add#0"}
    assert listed(client.get(f"{site}triggers/instance/?q={uid}-b")) == ["add#0"]


def test_instance_page_shows_the_error_and_traceback_read_only(client, site, database, uid):
    flaky_session(uid, database)
    pk = instance_pk(database, uid, "flaky#0")
    page = client.get(f"{site}triggers/instance/{pk}/change/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "builtins.ValueError" in text
    assert "Traceback (most recent call last)" in text
    assert "ValueError: the first run of flaky#0 fails (replay it)" in text
    assert "{&#x27;n&#x27;: 1}" in text  # the kwargs, decoded
    assert client.post(f"{site}triggers/instance/{pk}/change/", {"status": "finished"}).status_code == 403
    assert client.post(f"{site}triggers/instance/{pk}/delete/", {"post": "yes"}).status_code == 403
    assert rows(database, uid) == {"flaky#0": "failed"}


HOSTILE = "<script>alert('x')</script>\x1b]0;owned\x07\u009b2J"


def test_hostile_strings_are_escaped(client, site, database, uid):
    session_with(
        uid,
        database,
        {
            "task": "other",
            "status": "failed",
            "kwargs": {HOSTILE: HOSTILE},
            "metadata": {
                "exceptionType": HOSTILE,
                "exceptionInfo": f"Traceback\n  {HOSTILE}\nValueError: {HOSTILE}",
                "logLevel": 40,
            },
        },
    )
    pk = instance_pk(database, uid, "other#0")
    for url in (
        f"{site}triggers/instance/{pk}/change/",
        f"{site}triggers/instance/?q={uid}",
        f"{site}triggers/instance/?q={uid}&error_type=x",
    ):
        text = client.get(url).content.decode()
        assert "<script>alert" not in text
        assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]", text)
    detail = client.get(f"{site}triggers/instance/{pk}/change/").content.decode()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;\\x1b]0;owned\\x07\\x9b2J" in detail


def test_a_value_that_does_not_unpickle_is_shown_as_such(client, site, database, uid):
    session_with(uid, database, {"status": "finished"})
    Instance.objects.using(database).filter(session__uid=uid).update(kwargs=b"not a pickle")
    pk = instance_pk(database, uid, "add#0")
    page = client.get(f"{site}triggers/instance/{pk}/change/")
    assert page.status_code == 200
    assert "(unreadable:" in page.content.decode()


# ----------------------------------------------------------------- actions


def test_replay_through_the_manager(client, site, database, uid):
    flaky_session(uid, database)
    messages = act(client, site, "replay", instance_pk(database, uid, "flaky#0"))
    assert messages == [
        (
            "success",
            f"Replayed instance 'flaky#0' of session '{uid}': its clone 'flaky#1' is finished.",
        )
    ]
    # The clone ran on its runner, and its cascade ran the next task.
    assert rows(database, uid) == {
        "flaky#0": "replayed",
        "flaky#1": "finished",
        "after_flaky#0": "finished",
    }


def test_replay_refuses_an_instance_that_did_not_fail(client, site, database, uid):
    flaky_session(uid, database)
    session_with(uid + "-b", database, {"status": "finished"})
    messages = act(
        client,
        site,
        "replay",
        instance_pk(database, uid, "flaky#0"),
        instance_pk(database, uid + "-b", "add#0"),
    )
    assert messages == [
        ("success", f"Replayed instance 'flaky#0' of session '{uid}': its clone 'flaky#1' is finished."),
        (
            "error",
            f"Could not replay instance 'add#0' of session '{uid}-b': instance 'add#0' is"
            " 'finished'; only failed instances can be replayed.",
        ),
    ]
    assert rows(database, uid + "-b") == {"add#0": "finished"}


@pytest.mark.parametrize("cascade", [False, True])
def test_skip_with_or_without_cascade(client, site, database, uid, cascade):
    flaky_session(uid, database)
    action = "skip_cascade" if cascade else "skip"
    messages = act(client, site, action, instance_pk(database, uid, "flaky#0"))
    if cascade:
        expected = (
            f"Skipped with cascade instance 'flaky#0' of session '{uid}', firing its task"
            " 'flaky' with an empty result."
        )
        assert rows(database, uid) == {"flaky#0": "skipped", "after_flaky#0": "finished"}
    else:
        expected = f"Skipped instance 'flaky#0' of session '{uid}'."
        assert rows(database, uid) == {"flaky#0": "skipped"}
    assert messages == [("success", expected)]
    again = act(client, site, action, instance_pk(database, uid, "flaky#0"))
    assert again[0][0] == "error" and "only failed instances can be skipped" in again[0][1]


def test_mark_logs_resolved(client, site, database, uid):
    flaky_session(uid, database)
    pk = instance_pk(database, uid, "flaky#0")
    messages = act(client, site, "mark_logs_resolved", pk)
    assert messages == [("success", f"Resolved the logs of instance 'flaky#0' of session '{uid}'.")]
    assert Instance.objects.using(database).get(pk=pk).logs_resolved
    assert DatabaseStorageBackend(uid, using=database)["flaky#0"].logs_resolved


def test_redispatch_a_scheduled_instance(client, site, database, uid):
    session_with(uid, database, waiting("scheduled", ago(hours=1)))
    messages = act(client, site, "redispatch_stuck", instance_pk(database, uid, "add#0"))
    assert messages == [
        (
            "success",
            f"Re-dispatched instance 'add#0' of session '{uid}': it was scheduled, and was"
            " handed again to its runner (now finished).",
        )
    ]
    assert rows(database, uid) == {"add#0": "finished"}


def test_redispatch_a_running_instance(client, site, database, uid):
    session_with(uid, database, waiting("running", ago(hours=1)))
    messages = act(client, site, "redispatch_stuck", instance_pk(database, uid, "add#0"))
    assert messages == [
        (
            "success",
            f"Re-dispatched instance 'add#0' of session '{uid}': it was running, its worker"
            " lost; it was marked failed and replayed as 'add#1' (now finished).",
        )
    ]
    assert rows(database, uid) == {"add#0": "replayed", "add#1": "finished"}
    lost = DatabaseStorageBackend(uid, using=database)["add#0"]
    assert lost.metadata["exceptionType"] == WORKER_LOST


def test_redispatch_refuses_what_is_not_waiting(client, site, database, uid):
    flaky_session(uid, database)
    messages = act(client, site, "redispatch_stuck", instance_pk(database, uid, "flaky#0"))
    assert messages == [
        (
            "error",
            f"Could not re-dispatch instance 'flaky#0' of session '{uid}': instance 'flaky#0'"
            " is 'failed'; only scheduled or running instances can be re-dispatched.",
        )
    ]
    assert rows(database, uid) == {"flaky#0": "failed"}


def test_actions_need_the_change_permission(client, database, uid, django_user_model):
    flaky_session(uid, database)
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_instance", "view_session"])
    )
    client.force_login(viewer)
    site = PREFIX[database]
    page = client.get(site + "triggers/instance/")
    assert page.status_code == 200 and "flaky#0" in page.content.decode()
    assert 'name="action"' not in page.content.decode()
    client.post(
        site + "triggers/instance/",
        {"action": "replay", ACTION_CHECKBOX_NAME: [str(instance_pk(database, uid, "flaky#0"))]},
    )
    assert rows(database, uid) == {"flaky#0": "failed"}
