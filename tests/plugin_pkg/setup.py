# A third-party plugin for triggers, packaged as an application would package
# it: a storage backend and a task runner registered through entry points.
# It declares no dependencies: this package's distribution (triggers-django)
# is not on PyPI, and the test environment already has it installed.
from setuptools import setup

setup(
    name="triggers-test-plugin",
    version="1.0",
    description="A storage backend and a task runner that the triggers test suite loads as a plugin.",
    py_modules=["triggers_test_plugin"],
    entry_points={
        "triggers.storages": ["dict = triggers_test_plugin:DictStorageBackend"],
        "triggers.runners": ["recording = triggers_test_plugin:RecordingRunner"],
    },
)
