"""Process stored gateway events again: the ones named, or every one in a status.

    manage.py replay_gateway_events 12 15           # these GatewayEvent ids
    manage.py replay_gateway_events --status failed  # every failed event (oldest first)
    manage.py replay_gateway_events --status received --older-than-minutes 10

Harmless for events already applied: the ledger writes each fact once.
"""

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.db import OperationalError
from django.utils import timezone

from lumapay.errors import ApplicationError
from transactions.enums import GatewayEventStatus
from transactions.models import GatewayEvent
from transactions.services.gateway_events import gateway_event_replay


class Command(BaseCommand):
    help = "Process stored gateway events again (by id, or every event in a status)."

    def add_arguments(self, parser):
        parser.add_argument("ids", nargs="*", type=int, help="GatewayEvent ids")
        parser.add_argument("--status", choices=[s.value for s in GatewayEventStatus], help="every event in this status")
        parser.add_argument("--gateway", help="only events from this gateway")
        parser.add_argument(
            "--older-than-minutes", type=int, default=0, help="only events received at least this long ago"
        )
        parser.add_argument("--limit", type=int, default=500, help="at most this many events (default 500)")

    def handle(self, *args, ids, status, gateway, older_than_minutes, limit, **options):
        if not ids and not status:
            raise CommandError("Name event ids, or choose events with --status (for example --status failed).")
        events = GatewayEvent.objects.order_by("received_at", "id")
        if ids:
            events = events.filter(pk__in=ids)
            missing = sorted(set(ids) - set(events.values_list("pk", flat=True)))
            if missing:
                raise CommandError(f"No gateway event with id {', '.join(map(str, missing))}.")
        if status:
            events = events.filter(status=status)
        if gateway:
            events = events.filter(gateway=gateway)
        if older_than_minutes:
            events = events.filter(received_at__lte=timezone.now() - timedelta(minutes=older_than_minutes))

        replayed = failed = 0
        for event_id, event_type in events.values_list("pk", "event_type")[:limit]:
            try:
                event = gateway_event_replay(gateway_event_id=event_id)
            except (ApplicationError, OperationalError) as error:
                failed += 1
                self.stderr.write(f"event {event_id} ({event_type}): failed: {error}")
            else:
                replayed += 1
                self.stdout.write(f"event {event_id} ({event_type}): {event.status}")
        self.stdout.write(f"{replayed} replayed, {failed} failed.")
        if failed:
            raise CommandError(f"{failed} event(s) failed again; see the errors above and on each event.")
