"""Seed the demo: a break-glass administrator, the demo tenant's role mappings and subscriptions (idempotent)."""
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.demo import demo_role_mappings_ensure
from policies.demo import seed as seed_inventory
from policies.demo import seed_access_rules


class Command(BaseCommand):
    help = "Create the demo's data. Refuses to run outside DEBUG so it never seeds production."

    def add_arguments(self, parser):
        parser.add_argument("--admin-password", default="admin", help="password of the local 'admin' user")

    def handle(self, *args, admin_password: str, **options):
        if not settings.DEBUG:
            raise CommandError("seed_demo only runs with DEBUG on (the demo settings).")
        user_model = get_user_model()
        admin, created = user_model.objects.get_or_create(
            username="admin",
            defaults={"is_staff": True, "is_superuser": True, "display_name": "Break-glass admin"},
        )
        if created:
            admin.set_password(admin_password)
            admin.save(update_fields=["password"])
        mappings = demo_role_mappings_ensure()
        self.stdout.write(f"Role mappings created: {mappings}.")
        seed_inventory()
        transaction.on_commit(_copy_activity_log, robust=True)  # not only at the beat's first ingestion
        self.stdout.write("Demo subscriptions registered; their inventory and Activity Log copy in the background.")
        self.stdout.write(f"Access rules created: {seed_access_rules()}.")
        self.stdout.write(self.style.SUCCESS("Demo data ready."))


def _copy_activity_log() -> None:
    """Queue the Activity Log ingestion of every registered subscription (the audit search has a week at once)."""
    from audit.tasks import ingest_all

    ingest_all.delay()
