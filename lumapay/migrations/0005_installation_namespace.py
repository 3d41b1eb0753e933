"""The installation's own row, with the random namespace of its Stripe Idempotency-Keys."""

from django.db import migrations, models

import lumapay.models


def installation_create(apps, schema_editor):
    Installation = apps.get_model("lumapay", "Installation")
    Installation.objects.get_or_create(pk=1, defaults={"namespace": lumapay.models.installation_namespace_new()})


class Migration(migrations.Migration):

    dependencies = [
        ("lumapay", "0004_audit_action_receipt_not_sent"),
    ]

    operations = [
        migrations.CreateModel(
            name="Installation",
            fields=[
                ("id", models.PositiveSmallIntegerField(default=1, primary_key=True, serialize=False)),
                (
                    "namespace",
                    models.CharField(default=lumapay.models.installation_namespace_new, max_length=40, unique=True),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
            ],
            options={
                "constraints": [models.CheckConstraint(condition=models.Q(("id", 1)), name="installation_one_row")],
            },
        ),
        migrations.RunPython(installation_create, migrations.RunPython.noop),
    ]
