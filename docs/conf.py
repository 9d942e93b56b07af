"""Sphinx configuration for the triggers documentation."""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# autodoc imports the package, and the package is a Django app: configure a
# minimal Django first.
import django
from django.conf import settings

if not settings.configured:
    settings.configure(
        INSTALLED_APPS=["triggers"],
        CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
    )
    django.setup()


def _read_version() -> str:
    source = (ROOT / "triggers" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r"""^__version__\s*=\s*['"]([^'"]+)['"]""", source, re.MULTILINE)
    return match.group(1) if match else "unknown"


project = "triggers"
author = "the triggers authors"
copyright = "2026, the triggers authors"
release = _read_version()
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]

# No intersphinx: documentation builds must work without network access.
nitpicky = False

autodoc_member_order = "bysource"
autodoc_typehints = "description"

templates_path: list[str] = []
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

html_theme = "furo"
html_title = f"triggers {release}"

# Wide command output (show, unresolved) scrolls visibly, and fits on wide screens.
html_static_path = ["_static"]
html_css_files = ["wide-output.css"]
