"""A Django app whose tasks module fails to import (one of its own imports is missing)."""
