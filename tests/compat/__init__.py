"""Tests of the 2.x modules and test helpers, written the way a 2.x application's tests use them."""
