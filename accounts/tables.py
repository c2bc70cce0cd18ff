"""Declarative tables of the accounts app."""
import django_tables2 as tables

from accounts.models import RoleMapping
from jitportal.lib.tables import SortableTable, StackedRows, TimeColumn


class RoleMappingTable(StackedRows, SortableTable):
    """The role mappings list: sortable, its rows cards on a phone (``StackedRows``)."""

    # A group's claim value is its object id (a GUID): it wraps at its hyphens (``td.claim-value``) so that every
    # column shows at 1280 px beside the filters.
    source_value = tables.LinkColumn("accounts:rolemapping_edit", args=[tables.A("pk")], verbose_name="Claim value",
                                     attrs={"td": {"class": "claim-value"}})
    updated_at = TimeColumn(verbose_name="Updated")
    updated_by = tables.Column(verbose_name="Changed by", default="—")

    class Meta:
        model = RoleMapping
        fields = ("source_kind", "source_value", "tenant_id", "role", "scope", "description", "updated_at",
                  "updated_by")
        attrs = {"id": "result_list", "class": "stacked sortable"}
        empty_text = "No role mappings match."
        order_by = ("source_kind", "source_value")
