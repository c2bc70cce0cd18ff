"""Microsoft.Insights Activity Log (2015-04-01): the strict $filter grammar, $select and nextLink paging."""
from __future__ import annotations

from dataclasses import replace

from flask import request

from emulator.activity import FilterError, decode_token, parse_filter
from emulator.arm.context import ArmContext, next_link
from emulator.arm.router import router
from emulator.errors import bad_request


@router.route("GET", "/subscriptions/{sub}/providers/microsoft.insights/eventtypes/management/values")
def list_activity(ctx: ArmContext, sub: str):
    ctx.require_subscription(sub)
    try:
        flt = replace(parse_filter(request.args.get("$filter")), subscription=sub)
    except FilterError as exc:
        raise bad_request("BadRequest", str(exc)) from exc
    token = request.args.get("$skiptoken")
    if token:
        try:
            decode_token(token)
        except (ValueError, KeyError, TypeError) as exc:
            raise bad_request("BadRequest", "The $skiptoken is not valid.") from exc
    events, next_token = ctx.state.activity.page(flt, ctx.state.page_size, token)
    select = request.args.get("$select")
    if select:
        fields = {f.strip() for f in select.split(",") if f.strip()}
        events = [{k: v for k, v in e.items() if k in fields} for e in events]
    body: dict = {"value": events}
    if next_token:
        body["nextLink"] = next_link(next_token)
    return body
