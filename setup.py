"""Packaging for triggers.

The version is read from ``triggers/__init__.py`` (``__version__``) so that
it is written in one place only.
"""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent


def read_version() -> str:
    source = (HERE / "triggers" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r"""^__version__\s*=\s*['"]([^'"]+)['"]""", source, re.MULTILINE)
    if match is None:
        raise RuntimeError("__version__ not found in triggers/__init__.py")
    return match.group(1)


REDIS = ["django-redis>=5.4", "redis>=4.5"]
MEMCACHED = ["pymemcache>=4.0"]
POSTGRES = ["psycopg[binary]>=3.1"]
# The database storage backend on MySQL or MariaDB (Django's mysqlclient driver,
# which builds against the client library: Debian's libmariadb-dev and pkg-config).
MYSQL = ["mysqlclient>=2.2"]
# The ``celery`` runner, with what a worker on the Redis broker needs: Celery's own
# ``redis`` extra brings kombu's Redis transport dependencies (``packaging`` and a
# redis-py that kombu accepts, which REDIS above allows too).
CELERY = ["celery[redis]>=5.3"]

setup(
    name="triggers-django",
    version=read_version(),
    description=(
        "Observer-pattern task orchestration for Django: per-session tasks that run "
        "after triggers fire, with pluggable storage, locking and task runners."
    ),
    long_description=(HERE / "README.rst").read_text(encoding="utf-8"),
    long_description_content_type="text/x-rst",
    author="The triggers authors",
    license="MIT",
    license_files=["LICENSE"],
    python_requires=">=3.10",
    install_requires=["Django>=4.2"],
    extras_require={
        "redis": REDIS,
        "memcached": MEMCACHED,
        "postgres": POSTGRES,
        "mysql": MYSQL,
        "celery": CELERY,
        "test": [
            "pytest>=8",
            "pytest-django>=4.8",
            *REDIS,
            *MEMCACHED,
            *POSTGRES,
            # The lock Triggers 2.x takes, for the rolling-upgrade tests.
            "python-redis-lock==2.3.0",
            # Generated bad input in the fault suite.
            "hypothesis>=6.100",
        ],
        "docs": ["sphinx>=7", "furo"],
    },
    packages=find_packages(exclude=["tests", "tests.*", "benchmarks", "benchmarks.*"]),
    package_data={"triggers": ["py.typed"]},
    include_package_data=True,
    zip_safe=False,
    entry_points={
        "triggers.storages": [
            "cache = triggers.storages.cache:CacheStorageBackend",
            "database = triggers.storages.database:DatabaseStorageBackend",
        ],
        "triggers.managers": [
            "default = triggers.manager:TriggerManager",
        ],
        "triggers.runners": [
            "threading = triggers.tasks.runners:ThreadingTaskRunner",
            "sync = triggers.tasks.runners:SynchronousTaskRunner",
            "celery = triggers.tasks.runners:CeleryTaskRunner",
        ],
    },
    classifiers=[
        "Development Status :: 4 - Beta",
        "Environment :: Web Environment",
        "Framework :: Django",
        "Framework :: Django :: 4.2",
        "Framework :: Django :: 5.2",
        "Framework :: Django :: 6.0",
        "Intended Audience :: Developers",
        "Operating System :: OS Independent",
        "Programming Language :: Python",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Topic :: Software Development :: Libraries :: Application Frameworks",
        "Typing :: Typed",
    ],
)
