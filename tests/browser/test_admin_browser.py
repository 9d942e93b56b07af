"""The admin in a real browser: log in, find the failed session, replay its instance.

Headless Chromium (Debian's ``chromium`` and ``chromium-driver``) driven by
Selenium, against pytest-django's live server. Screenshots of each step go
to the directory ``TRIGGERS_SCREENSHOTS`` names (default: a new temporary
directory, printed). Runs in ``tox -e browser``; without Chromium, its
driver or Selenium it is skipped, or fails when
``TRIGGERS_TEST_REQUIRE_SERVICES=1``.
"""

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.admin_support import flaky_session, session_with
from triggers.models import Instance, Session

CHROMIUM = os.environ.get("TRIGGERS_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("TRIGGERS_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
WIDTH, HEIGHT = 1500, 900

pytestmark = pytest.mark.django_db(transaction=True)


def _missing():
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if shutil.which(path) is None]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install selenium)")
    return missing


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium, through its driver."""
    missing = _missing()
    if missing:
        message = f"no browser to test the admin in: missing {', '.join(missing)}"
        if os.environ.get("TRIGGERS_TEST_REQUIRE_SERVICES") == "1":
            pytest.fail(message + " (TRIGGERS_TEST_REQUIRE_SERVICES=1)")
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(argument)
    options.add_argument(f"--window-size={WIDTH},{HEIGHT}")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def screenshots():
    """Where the screenshots go."""
    where = os.environ.get("TRIGGERS_SCREENSHOTS") or tempfile.mkdtemp(prefix="triggers-admin-")
    path = Path(where)
    path.mkdir(parents=True, exist_ok=True)
    print(f"screenshots in {path}")
    return path


class Page:
    """The browser on the admin, with the few moves the test makes."""

    def __init__(self, driver, base_url, screenshots):
        from selenium.webdriver.common.by import By

        self.driver = driver
        self.base_url = base_url
        self.screenshots = screenshots
        self.by = By

    def open(self, path):
        self.driver.get(self.base_url + path)

    def css(self, selector):
        return self.driver.find_element(self.by.CSS_SELECTOR, selector)

    def all_css(self, selector):
        return self.driver.find_elements(self.by.CSS_SELECTOR, selector)

    def shot(self, name, height=HEIGHT):
        self.driver.set_window_size(WIDTH, height)
        self.driver.save_screenshot(str(self.screenshots / f"admin-{name}.png"))
        self.driver.set_window_size(WIDTH, HEIGHT)

    def rows(self):
        """The changelist's rows: ``{first column's text: {column class: text}}``."""
        found = {}
        for row in self.all_css("#result_list tbody tr"):
            cells = row.find_elements(self.by.CSS_SELECTOR, "th, td")
            columns = {
                cls.removeprefix("field-"): cell.text
                for cell in cells
                for cls in (cell.get_attribute("class") or "").split()
                if cls.startswith("field-")
            }
            found[row.find_element(self.by.CSS_SELECTOR, "th").text] = columns
        return found

    def messages(self):
        return [item.text for item in self.all_css("ul.messagelist li")]


def test_replay_a_failed_instance_in_the_browser(
    browser, screenshots, live_server, django_user_model, settings
):
    settings.TIME_ZONE = "UTC"  # the pages' times as the stored timestamps read (UTC)
    uid = f"order-{uuid.uuid4().hex[:8]}"
    django_user_model.objects.create_superuser("operator", "op@example.com", "s3cret-pw")
    flaky_session(uid, "default")
    session_with(uid + "-done", "default", {"status": "finished"})
    page = Page(browser, live_server.url, screenshots)

    page.open("/admin/login/?next=/admin/")
    page.css("#id_username").send_keys("operator")
    page.css("#id_password").send_keys("s3cret-pw")
    page.shot("login")
    page.css("#login-form [type=submit]").click()
    assert "Site administration" in browser.title

    page.open("/admin/triggers/session/")
    page.css("#toggle-nav-sidebar").click()  # more room for the lists (the choice is kept)
    assert set(page.rows()) == {uid, uid + "-done"}
    page.css('a[href="?failed=yes"]').click()
    assert set(page.rows()) == {uid}
    assert page.rows()[uid]["failed"] == "1"
    page.shot("failed-sessions")

    page.css("#result_list a[href*='session__id__exact'][href*='status=failed']").click()
    assert set(page.rows()) == {"flaky#0"}
    page.css("input[name=_selected_action]").click()
    page.css("select[name=action] option[value=replay]").click()
    page.css("button[name=index]").click()
    assert page.messages() == [
        f"Replayed instance 'flaky#0' of session '{uid}': its clone 'flaky#1' is finished."
    ]

    page.open(f"/admin/triggers/instance/?q={uid}")
    rows = page.rows()
    assert rows["flaky#1"]["status"] == "finished"
    assert rows["flaky#0"]["status"] == "replayed"
    assert rows["after_flaky#0"]["status"] == "finished"
    page.shot("after-replay")

    pk = Instance.objects.get(session__uid=uid, name="flaky#0").pk
    page.open(f"/admin/triggers/instance/{pk}/change/")
    traceback = page.css(".field-traceback pre").text
    assert "Traceback (most recent call last)" in traceback
    assert traceback.rstrip().endswith("ValueError: the first run of flaky#0 fails (replay it)")
    assert not page.all_css("input[name=_save]")  # view only
    page.shot("instance-detail", height=1500)

    session = Session.objects.get(uid=uid)
    page.open(f"/admin/triggers/session/{session.pk}/change/")
    assert "flaky" in page.css(".field-tasks").text
    page.shot("session-detail", height=1100)
