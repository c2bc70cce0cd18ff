"""Shared django-tables2 column settings."""

# Cells that must not wrap (dates break at their hyphens otherwise): the admin's own ``nowrap`` class.
NOWRAP = {"td": {"class": "nowrap"}}
