"""Scopes parse in three forms and contain what lies under them, case-insensitively, by whole segments."""
import pytest

from accounts.scopes import (
    InvalidScope,
    Scope,
    ScopeKind,
    minimal_scopes,
    normalize_scope,
    parse_scope,
    scope_contains,
    valid_scopes,
)

SUB = "/subscriptions/c0a1b2c3-0000-4000-8000-000000000001"
VM = f"{SUB}/resourceGroups/rg-web-prod/providers/Microsoft.Compute/virtualMachines/web-01"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (SUB, ScopeKind.SUBSCRIPTION),
        (SUB.upper().replace("/SUBSCRIPTIONS/", "/subscriptions/"), ScopeKind.SUBSCRIPTION),
        (f"{SUB}/resourceGroups/rg-web-prod", ScopeKind.RESOURCE_GROUP),
        (f"{SUB}/resourcegroups/rg-web-prod/", ScopeKind.RESOURCE_GROUP),
        (VM, ScopeKind.VIRTUAL_MACHINE),
    ],
)
def test_it_parses_the_three_forms(text, kind):
    assert parse_scope(text).kind is kind


def test_it_normalises_spelling_but_keeps_names():
    text = "/SUBSCRIPTIONS/C0A1B2C3-0000-4000-8000-000000000001/RESOURCEGROUPS/RG-Web/providers/microsoft.compute/" \
           "VIRTUALMACHINES/Web-01"
    assert normalize_scope(text) == (
        f"{SUB}/resourceGroups/RG-Web/providers/Microsoft.Compute/virtualMachines/Web-01"
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "/",
        "/subscriptions/not-a-guid",
        f"{SUB}/resourceGroups/",
        f"{SUB}/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/nsg",
        f"{SUB}/resourceGroups/rg-ends-with-dot.",
        f"{SUB}/resourceGroups/rg/../other",
        "subscriptions/c0a1b2c3-0000-4000-8000-000000000001",
    ],
)
def test_it_refuses_anything_else(text):
    with pytest.raises(InvalidScope):
        parse_scope(text)


def test_valid_scopes_parses_in_order_and_skips_what_does_not_parse():
    rg = f"{SUB}/resourceGroups/rg-web-prod"
    texts = iter([VM.upper().replace("/SUBSCRIPTIONS/", "/subscriptions/"), "/", "/subscriptions/not-a-guid", rg, ""])
    assert list(valid_scopes(texts)) == [
        Scope("c0a1b2c3-0000-4000-8000-000000000001", "RG-WEB-PROD", "WEB-01"),
        Scope("c0a1b2c3-0000-4000-8000-000000000001", "rg-web-prod"),
    ]
    assert list(valid_scopes([])) == []


@pytest.mark.parametrize(
    ("outer", "inner", "expected"),
    [
        (SUB, VM, True),
        (SUB, SUB, True),
        (SUB.upper(), VM.lower(), True),
        (f"{SUB}/resourceGroups/rg-web-prod", VM, True),
        (f"{SUB}/resourceGroups/rg-web", VM, False),
        (VM, VM + "/extensions/x", True),
        (VM, f"{SUB}/resourceGroups/rg-web-prod", False),
        ("/subscriptions/c0a1b2c3-0000-4000-8000-00000000000", SUB, False),
        ("/", VM, True),
    ],
)
def test_a_scope_contains_what_lies_under_it_by_whole_segments(outer, inner, expected):
    assert scope_contains(outer, inner) is expected


def test_minimal_scopes_drops_covered_ones():
    rg = f"{SUB}/resourceGroups/rg-web-prod"
    other = "/subscriptions/c0a1b2c3-0000-4000-8000-000000000002"
    assert minimal_scopes([VM, rg, SUB.upper(), other, SUB]) == [SUB.upper(), other]
