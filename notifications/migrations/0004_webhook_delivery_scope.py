from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def made_for_the_webhooks_scope(apps, schema_editor):
    """Deliveries stored before the field was made for their webhook's scope as it is (payloads are scoped so)."""
    webhook = apps.get_model("notifications", "Webhook")
    delivery = apps.get_model("notifications", "WebhookDelivery")
    delivery.objects.update(scope=Subquery(webhook.objects.filter(pk=OuterRef("webhook_id")).values("scope")[:1]))


class Migration(migrations.Migration):

    dependencies = [
        ('notifications', '0003_webhook_secret_sealed'),
    ]

    operations = [
        migrations.AddField(
            model_name='webhookdelivery',
            name='scope',
            field=models.CharField(blank=True, help_text="The webhook's scope its payload was made for (empty: every scope). Not sent once the webhook's scope no longer holds it.", max_length=512),
        ),
        migrations.RunPython(made_for_the_webhooks_scope, migrations.RunPython.noop),
    ]
