"""Seal every webhook secret again under the current ``SECRET_KEY`` (after a rotation, before dropping the
old key from ``DJANGO_SECRET_KEY_FALLBACKS``); exits non-zero when some secret no configured key opens."""
from django.core.management.base import BaseCommand, CommandError

from jitportal.lib.sealing import SecretUnreadable, reseal
from notifications.models import Webhook


class Command(BaseCommand):
    help = "Re-encrypt the webhook secrets under the current SECRET_KEY."

    def handle(self, *args, **options):
        resealed, unreadable = 0, []
        for webhook in Webhook.objects.only("pk", "name", "secret_sealed").order_by("pk"):
            try:
                sealed = reseal(webhook.secret_sealed)
            except SecretUnreadable:
                unreadable.append(webhook)
                continue
            # Conditional: a secret rotated meanwhile is already sealed under the current key.
            resealed += Webhook.objects.filter(pk=webhook.pk, secret_sealed=webhook.secret_sealed).update(
                secret_sealed=sealed)
        for webhook in unreadable:
            self.stderr.write(f"webhook {webhook.pk} ({webhook.name}): no configured key opens its secret; "
                              "rotate it on its page")
        if unreadable:
            raise CommandError(f"{len(unreadable)} webhook secret(s) could not be read; {resealed} resealed")
        self.stdout.write(self.style.SUCCESS(f"{resealed} webhook secret(s) sealed under the current key"))
