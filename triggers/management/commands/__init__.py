"""``manage.py triggers``: see :mod:`triggers.operations`."""
