"""The migrations say what the models say, whatever the project's DEFAULT_AUTO_FIELD."""

import io

import pytest
from django.apps import apps
from django.core.management import call_command


@pytest.mark.parametrize(
    "auto_field", ["django.db.models.AutoField", "django.db.models.BigAutoField", None]
)
def test_the_models_need_no_new_migration(auto_field, settings):
    if auto_field is None:
        del settings.DEFAULT_AUTO_FIELD
    else:
        settings.DEFAULT_AUTO_FIELD = auto_field
    out = io.StringIO()
    call_command("makemigrations", "triggers", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()
    for model in apps.get_app_config("triggers").get_models():
        assert not [w for w in model.check() if w.id == "models.W042"], model
