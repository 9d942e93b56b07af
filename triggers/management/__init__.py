"""Django management commands of the triggers app."""
