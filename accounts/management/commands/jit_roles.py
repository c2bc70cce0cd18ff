"""Write the Azure custom role definitions of the portal's Azure roles, and optionally apply them.

The equivalent of the seed's ``Set-JitLeastPrivilegedRole``: one ARM role definition per portal role
(reader, requester, policy admin) holding exactly the seed's actions, assignable at the given scopes.
"""
from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from accounts.role_definitions import ASSIGNABLE_SCOPES, DEFAULT_SUFFIX, assignable_scope, build_role_definitions
from accounts.roles import AZURE_ROLE_NAMES


class Command(BaseCommand):
    help = "Write (and with --apply, create or update through the gateway) the portal's Azure custom roles."

    def add_arguments(self, parser):
        parser.add_argument("--scope", action="append", required=True, dest="scopes",
                            help=f"an assignable scope: {ASSIGNABLE_SCOPES} (not a VM); repeatable")
        parser.add_argument("--role", action="append", dest="roles", choices=AZURE_ROLE_NAMES,
                            help="only this portal role (repeatable; default: all)")
        parser.add_argument("--suffix", default=DEFAULT_SUFFIX,
                            help='appended to role names: "JIT Requester (SUFFIX)"')
        parser.add_argument("--output", help="a directory to write one JSON file per role (default: stdout)")
        parser.add_argument("--apply", action="store_true",
                            help="create or update the definitions in Azure through the gateway")
        parser.add_argument("--subscription", help="with --apply: the subscription the definitions are created in")

    def handle(self, *args, scopes, roles, suffix, output, apply, subscription, **options):
        try:
            definitions = build_role_definitions([assignable_scope(s) for s in scopes], roles, suffix)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if output:
            self._write(definitions, Path(output))
        elif not apply:
            self.stdout.write(json.dumps(list(definitions.values()), indent=2))
        if apply:
            self._apply(definitions, subscription)

    def _write(self, definitions: dict[str, dict], directory: Path) -> None:
        """One JSON file per definition in ``directory`` (made when missing)."""
        try:
            directory.mkdir(parents=True, exist_ok=True)
            for name, definition in definitions.items():
                path = directory / f"jit-{name.replace('_', '-')}.json"
                path.write_text(json.dumps(definition, indent=2) + "\n")
                self.stdout.write(f"Wrote {path}")
        except OSError as exc:
            raise CommandError(f"--output: cannot write to {exc.filename or directory}: "
                               f"{exc.strerror or exc}.") from exc

    def _apply(self, definitions: dict[str, dict], subscription_id: str | None) -> None:
        """PUT each definition at the subscription through the gateway, with the portal's own credential."""
        from cloud.errors import CloudError, Unreadable
        from policies.gateway import gateway_for_subscription
        from policies.models import Subscription

        if not subscription_id:
            raise CommandError("--apply needs --subscription (where the definitions are created).")
        subscription = Subscription.objects.filter(subscription_id__iexact=subscription_id).first()
        if subscription is None:
            raise CommandError(f"Subscription {subscription_id} is not registered in the portal (Settings).")
        scope = f"/subscriptions/{subscription.subscription_id}"
        try:
            gateway = gateway_for_subscription(subscription)
        except CloudError as exc:  # its credential reference or endpoint is not usable
            raise CommandError(f"Cannot apply the roles in {subscription}: {exc}") from exc
        with gateway:
            for definition in definitions.values():
                properties = definition["properties"]
                permissions = properties["permissions"][0]
                try:
                    applied = gateway.put_role_definition(
                        scope, definition["name"], role_name=properties["roleName"],
                        description=properties["description"], actions=permissions["actions"],
                        not_actions=permissions["notActions"], assignable_scopes=properties["assignableScopes"],
                    )
                except Unreadable as exc:  # Azure answered: the definition may be in place
                    raise CommandError(f"Azure's answer for {properties['roleName']} could not be read ({exc}): it "
                                       f"may have been applied; run the command again, which updates it in place."
                                       ) from exc
                except CloudError as exc:
                    hint = (" A role of this name exists for other assignable scopes (another subscription's, or "
                            "an earlier --scope list): choose another --suffix, or delete that role in Azure first."
                            if exc.code == "RoleDefinitionWithSameNameExists" else "")
                    raise CommandError(f"Azure refused {properties['roleName']}: {exc}{hint}") from exc
                self.stdout.write(f"Applied {applied.role_name} ({applied.name}) at {scope}")
