"""The migrations say what the models say: no change is left for makemigrations."""

import io

from django.core.management import call_command


def test_the_models_need_no_new_migration():
    out = io.StringIO()
    call_command("makemigrations", "triggers", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()
