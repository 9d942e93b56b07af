# A third-party plugin for triggers, packaged as an application would package
# it: a storage backend and a task runner registered through entry points.
# It declares no dependencies: the "triggers" project on PyPI is another
# package, and the test environment already has this one installed.
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
