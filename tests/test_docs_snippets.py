"""The Python examples written inline in README.rst and the docs run as shown."""

import pathlib
import re

import pytest

from triggers import CacheStorageBackend

ROOT = pathlib.Path(__file__).resolve().parent.parent


def python_blocks(path):
    """The ``.. code-block:: python`` bodies of an reST file, dedented."""
    text = (ROOT / path).read_text()
    blocks = []
    for match in re.finditer(r"\.\. code-block:: python\n\n((?:(?:   .*)?\n)+)", text):
        lines = match.group(1).splitlines()
        blocks.append("\n".join(line[3:] for line in lines).strip() + "\n")
    return blocks


def session_example(path):
    (block,) = [b for b in python_blocks(path) if "TriggerManager(CacheStorageBackend(" in b]
    return block


@pytest.mark.parametrize("path", ["README.rst"])  # getting-started: test_docs_getting_started.py
def test_first_session_example_runs(path, settings, capsys):
    settings.TRIGGERS_DEFAULT_RUNNER = "sync"
    settings.TRIGGERS_CACHE_ALIAS = "locmem"
    code = session_example(path)
    exec(compile(code, path, "exec"), {})
    storage = CacheStorageBackend("questionnaire-42", cache="locmem")
    # The example registers its tasks: the instance it made ready ran.
    instance = storage["t_importSubject#0"]
    assert instance.kwargs == {"sessionStarted": {"subject_id": 1234}}
    assert instance.status == "finished"
    assert instance.metadata["result"] == {"subject_id": 1234, "name": "Ada"}
    assert "t_importSubject#0 (finished)" in capsys.readouterr().out


def test_readme_storage_backend_example_works_with_the_manager(settings):
    from triggers import TriggerManager

    (code,) = [b for b in python_blocks("README.rst") if "class DictStorageBackend" in b]
    namespace = {}
    exec(compile(code, "README.rst", "exec"), namespace)
    backend = namespace["DictStorageBackend"]
    manager = TriggerManager(backend("readme-session"))
    manager.update_configuration({"t": {"after": ["go"], "run": "nothing", "using": "sync"}})
    assert manager.storage.tasks["t"].after == {"go"}
    again = backend("readme-session")
    assert set(again.tasks) == {"t"}
    assert namespace["SESSIONS"]["readme-session"]["tasks"]["t"]["run"] == "nothing"


def test_the_landing_pages_sample_runs(settings):
    settings.TRIGGERS_DEFAULT_RUNNER = "sync"
    settings.TRIGGERS_CACHE_ALIAS = "locmem"
    (code,) = python_blocks("docs/index.rst")
    exec(compile(code, "docs/index.rst", "exec"), {})
    storage = CacheStorageBackend("order-1042", cache="locmem")
    try:
        instance = storage["t_sendInvoice#0"]
        assert instance.status == "finished"
        assert instance.metadata["result"] == {"invoice": "INV-1042"}
    finally:
        storage.delete()
