"""Whole numbers typed by people: the digits 0 to 9 only. Python's ``int()`` (and so Django's and DRF's integer
fields) also reads other scripts' digits (Arabic-Indic, full-width) as numbers; a port or a
duration typed so would be stored as a number its author may not have meant, so it is refused in words."""
from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from rest_framework import serializers

ASCII_DIGITS = "Type the number with the digits 0 to 9."


def is_ascii_number_text(value: object) -> bool:
    """False for text holding a character outside ASCII (other scripts' digits among them); True otherwise."""
    return not isinstance(value, str) or value.isascii()


class AsciiIntegerField(forms.IntegerField):
    """A form's ``IntegerField`` that refuses digits other than 0 to 9 (``error_messages["not_ascii"]``)."""

    default_error_messages = {"not_ascii": ASCII_DIGITS}

    def to_python(self, value):
        if not is_ascii_number_text(value):
            raise ValidationError(self.error_messages["not_ascii"], code="not_ascii")
        return super().to_python(value)


class AsciiIntegerSerializerField(serializers.IntegerField):
    """The API's ``IntegerField`` that refuses, as text, digits other than 0 to 9."""

    default_error_messages = {"not_ascii": ASCII_DIGITS}

    def to_internal_value(self, data):
        if not is_ascii_number_text(data):
            self.fail("not_ascii")
        return super().to_internal_value(data)
