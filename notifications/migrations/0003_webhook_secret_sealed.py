"""Seal the webhook secrets stored in clear until now (``notifications.sealing``)."""

from django.db import migrations, models


def seal_secrets(apps, schema_editor):
    from jitportal.lib.sealing import seal

    Webhook = apps.get_model("notifications", "Webhook")
    for webhook in Webhook.objects.only("pk", "secret"):
        Webhook.objects.filter(pk=webhook.pk).update(secret_sealed=seal(webhook.secret))


def unseal_secrets(apps, schema_editor):
    from jitportal.lib.sealing import unseal

    Webhook = apps.get_model("notifications", "Webhook")
    for webhook in Webhook.objects.only("pk", "secret_sealed"):
        Webhook.objects.filter(pk=webhook.pk).update(secret=unseal(webhook.secret_sealed))


class Migration(migrations.Migration):

    dependencies = [
        ('notifications', '0002_pending_events'),
    ]

    operations = [
        migrations.AddField(
            model_name='webhook',
            name='secret_sealed',
            field=models.TextField(default='', editable=False),
            preserve_default=False,
        ),
        migrations.RunPython(seal_secrets, unseal_secrets),
        migrations.RemoveField(
            model_name='webhook',
            name='secret',
        ),
    ]
