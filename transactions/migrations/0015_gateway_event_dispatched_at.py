"""When a gateway event's processing was last queued, so a beat sweep can queue again the events a
killed worker left unprocessed (they were answered 200, so the gateway never sends them again).
Existing rows take the time of the migration: any still unprocessed is queued again minutes later.
"""

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('org_profile', '0003_stripe_connect'),
        ('transactions', '0014_outside_refunds_and_dispute_funds'),
    ]

    operations = [
        migrations.AddField(
            model_name='gatewayevent',
            name='dispatched_at',
            field=models.DateTimeField(default=django.utils.timezone.now, help_text='when its processing was last queued; the sweep queues it again if it is still unprocessed minutes later'),
        ),
        migrations.AddIndex(
            model_name='gatewayevent',
            index=models.Index(condition=models.Q(('status__in', ['received', 'failed'])), fields=['dispatched_at'], name='gateway_event_unsettled'),
        ),
    ]
