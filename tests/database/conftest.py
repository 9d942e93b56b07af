"""The database storage backend's suite runs on every database the settings name:
SQLite ("default"), PostgreSQL ("pg") and MariaDB ("maria")."""

import os

import pytest
from django.conf import settings

from tests.conftest import require_service

DATABASE_ALIASES = ["default", "pg", "maria"]
SERVICE_OF_DATABASE = {"pg": "postgresql", "maria": "mariadb"}


def database_in_use(request, alias):
    """Make ``alias`` usable by the running test (committed rows, seen by other
    processes) and return it; skip, or fail in CI, when it is not configured."""
    if alias not in settings.DATABASES:
        require_service(SERVICE_OF_DATABASE[alias])
        message = f"database {alias!r} is not configured (is its driver installed?)"
        if os.environ.get("TRIGGERS_TEST_REQUIRE_SERVICES") == "1":
            pytest.fail(message + " (TRIGGERS_TEST_REQUIRE_SERVICES=1)")
        pytest.skip(message)
    request.getfixturevalue("transactional_db")
    return alias


@pytest.fixture(params=DATABASE_ALIASES)
def database(request):
    """Each database the backend is tested on, by alias."""
    return database_in_use(request, request.param)


def pytest_collection_modifyitems(items):
    databases = [alias for alias in DATABASE_ALIASES if alias in settings.DATABASES]
    for item in items:
        item.add_marker(pytest.mark.django_db(transaction=True, databases=databases))


@pytest.fixture
def uid():
    """A session uid no other test uses."""
    import uuid

    return "db-" + uuid.uuid4().hex
