"""URLs of the async view example (docs/examples/async_view.py)."""

from django.urls import path

from tests.runner_support import load_example

urlpatterns = [path("sign-up/<str:uid>/", load_example("async_view").sign_up)]
