"""A small Django project with a Celery app, whose workers the Celery tests start.

``config`` makes the app (the test process makes its own, on the broker a
test needs); ``celery`` is the module ``celery -A tests.celery_app`` loads in
the worker; ``tasks`` holds the tasks, in both the 2.x way (TriggerTask
subclasses) and this package's (``@task``); ``settings`` are the worker's
Django settings.
"""
