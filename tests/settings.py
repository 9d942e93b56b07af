"""Django settings for the test suite: every cache the storage layer supports.

Services: Redis on 127.0.0.1:6379, Memcached on 127.0.0.1:11211, PostgreSQL on
127.0.0.1:5432 (trust auth, database "test"). Each address can be moved with
TRIGGERS_TEST_REDIS_URL, TRIGGERS_TEST_MEMCACHED and TRIGGERS_TEST_PG_HOST/PORT.
"""

import importlib.util
import os
import socket
import tempfile

SECRET_KEY = "triggers-tests"
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",  # the admin's styles, served by the live server
    "triggers",
]
# The admin (triggers.admin), for its tests (tests/database/test_admin.py, tests/browser).
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
ROOT_URLCONF = "tests.urls"
STATIC_URL = "/static/"

REDIS_URL = os.environ.get("TRIGGERS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
MEMCACHED = os.environ.get("TRIGGERS_TEST_MEMCACHED", "127.0.0.1:11211")
PG_HOST = os.environ.get("TRIGGERS_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("TRIGGERS_TEST_PG_PORT", "5432"))
REQUIRE_SERVICES = os.environ.get("TRIGGERS_TEST_REQUIRE_SERVICES") == "1"


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


HAS_PG = REQUIRE_SERVICES or reachable(PG_HOST, PG_PORT)

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.path.join(tempfile.gettempdir(), "triggers-tests.sqlite3"),
        # A file, not memory: processes racing for a lock must share it.
        "TEST": {"NAME": os.path.join(tempfile.gettempdir(), f"triggers-test-{os.getpid()}.sqlite3")},
        "OPTIONS": {"timeout": 20},
    },
}
if HAS_PG:
    DATABASES["pg"] = {
        "ENGINE": "django.db.backends.postgresql",
        # A worker the tests start is given the test database's name here.
        "NAME": os.environ.get("TRIGGERS_TEST_PG_NAME", "test"),
        "USER": "postgres",
        "HOST": PG_HOST,
        "PORT": PG_PORT,
        "TEST": {"NAME": f"test_triggers_{os.getpid()}"},
    }

# MariaDB, for the database storage backend's suite (tests/database), where
# its driver (mysqlclient) is installed.
MARIADB_HOST = os.environ.get("TRIGGERS_TEST_MARIADB_HOST", "127.0.0.1")
MARIADB_PORT = int(os.environ.get("TRIGGERS_TEST_MARIADB_PORT", "3306"))
HAS_MARIADB = importlib.util.find_spec("MySQLdb") is not None and (
    REQUIRE_SERVICES or reachable(MARIADB_HOST, MARIADB_PORT)
)
if HAS_MARIADB:
    DATABASES["maria"] = {
        "ENGINE": "django.db.backends.mysql",
        "NAME": "test",
        "USER": "root",
        "HOST": MARIADB_HOST,
        "PORT": MARIADB_PORT,
        "OPTIONS": {"charset": "utf8mb4"},
        "TEST": {"NAME": f"test_triggers_{os.getpid()}", "CHARSET": "utf8mb4"},
    }

# Django culls LocMem and database caches past MAX_ENTRIES (300 by default),
# deleting whatever rows come first; a test's session must not vanish that way.
NO_CULLING = {"MAX_ENTRIES": 10**7}

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "default",
        "OPTIONS": NO_CULLING,
    },
    "locmem": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "locmem",
        "OPTIONS": NO_CULLING,
    },
    # Client timeouts (triggers.W002): a server that stops answering fails a
    # call instead of hanging the suite.
    "redis": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "OPTIONS": {"SOCKET_TIMEOUT": 10, "SOCKET_CONNECT_TIMEOUT": 5},
    },
    "dredis": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "OPTIONS": {"socket_timeout": 10, "socket_connect_timeout": 5},
    },
    "memcached": {
        "BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
        "LOCATION": MEMCACHED,
        "OPTIONS": {"timeout": 10, "connect_timeout": 5},
    },
    "db_sqlite": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "triggers_cache_sqlite",
        "OPTIONS": NO_CULLING,
    },
    "db_pg": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "triggers_cache_pg",
        "OPTIONS": NO_CULLING,
    },
    "file": {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": os.path.join(tempfile.gettempdir(), "triggers-tests-filecache"),
    },
    "dummy": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"},
}

DATABASE_ROUTERS = ["tests.routers.CacheTableRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
TRIGGERS_DEFAULT_RUNNER = "threading"
