"""The default runner follows the process's setup; the system check triggers.I001 says so.

Each case runs in a fresh Python with the test project's settings, which do
not set ``TRIGGERS_DEFAULT_RUNNER`` (as a 2.x project's do not).
"""

from __future__ import annotations

from tests.celery_probe import probe

SETUP = """
import django
django.setup()
"""


def test_a_process_with_a_celery_app_runs_its_tasks_on_celery():
    reported = probe(
        SETUP
        + """
from celery import Celery

app = Celery("proj")
report()
"""
    )
    assert (reported["name"], reported["from_setting"]) == ("celery", False)
    assert "this process has a Celery app ('proj')" in reported["reason"]
    [message] = reported["I001"]
    assert message.startswith("Tasks whose configuration has no 'using' run on the 'celery' runner:")


def test_celery_installed_without_an_app_keeps_threads():
    reported = probe(SETUP + "import celery\nreport()\n")
    assert reported["name"] == "threading"
    assert reported["reason"].startswith("Celery is installed, but this process has no Celery app")
    assert "'threading' runner" in reported["I001"][0]


def test_celerys_own_fallback_app_is_no_application_app():
    reported = probe(SETUP + "import celery\nassert celery.current_app.main == 'default'\nreport()\n")
    assert reported["name"] == "threading"


def test_the_setting_wins_and_silences_the_check():
    reported = probe(
        SETUP
        + """
from celery import Celery
from django.conf import settings

app = Celery("proj")
settings.TRIGGERS_DEFAULT_RUNNER = "sync"
report()
"""
    )
    assert (reported["name"], reported["from_setting"], reported["I001"]) == ("sync", True, [])


def test_the_app_is_found_from_any_thread():
    reported = probe(
        SETUP
        + """
import threading
from celery import Celery
from triggers.tasks.celery_tasks import get_celery_app

app = Celery("proj")
seen = {}
# Celery's current app is per thread; a request thread finds the default app
# (Celery's Django fixup makes the first app the default).
thread = threading.Thread(target=lambda: seen.update(app=get_celery_app().main))
thread.start(); thread.join()
report(thread_app=seen["app"])
"""
    )
    assert reported["thread_app"] == "proj"


def test_among_several_apps_none_current_the_app_must_be_named():
    reported = probe(
        SETUP
        + """
from celery import Celery
from django.conf import settings
from triggers.tasks.celery_tasks import CeleryAppNotFound, get_celery_app

# Outside Celery's Django setup, apps made this way are neither current nor default.
only = Celery("only", set_as_current=False, fixups=[])
found_only = get_celery_app().main
other = Celery("other", set_as_current=False, fixups=[])
try:
    get_celery_app()
except CeleryAppNotFound as exc:
    error = str(exc)
settings.TRIGGERS_CELERY_APP = other
report(found_only=found_only, error=error, named=get_celery_app().main)
"""
    )
    assert reported["found_only"] == "only"
    assert "several Celery apps ('only', 'other') and none is current" in reported["error"]
    assert "TRIGGERS_CELERY_APP" in reported["error"]
    assert reported["named"] == "other"
    assert reported["name"] == "celery"
