"""A Django app whose tasks module is found only by task autodiscovery."""
