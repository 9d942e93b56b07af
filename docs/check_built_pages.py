"""Fail if a built page shows something the theme marks as an error in the browser.

Furo paints any table of contents put in a page (a ``.. contents::``
directive) with a red "ERROR" box, in CSS, so ``sphinx-build -W`` passes;
this finds such elements in the built HTML. Run after a build:
``python docs/check_built_pages.py BUILD_DIR``.
"""

import pathlib
import re
import sys

#: an element with the class Furo paints red, unless it carries the escape hatch
MARKED = re.compile(r'class="(?![^"]*this-will-duplicate-information)[^"]*\bcontents\b[^"]*"')


def main(build_dir: str) -> int:
    pages = sorted(pathlib.Path(build_dir).glob("**/*.html"))
    if not pages:
        print(f"no HTML pages under {build_dir}", file=sys.stderr)
        return 2
    bad = [page for page in pages if MARKED.search(page.read_text(encoding="utf-8"))]
    for page in bad:
        print(f"{page}: a table of contents, which the theme shows as an ERROR box", file=sys.stderr)
    print(f"{len(pages)} pages checked, {len(bad)} with an error box")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:2]))
