"""Check the audit trail's hash chain: exits non-zero when any event was altered, removed or inserted."""
from django.core.management.base import BaseCommand, CommandError

from audit.chain import verify
from audit.models import AuditChainHead, AuditEvent


class Command(BaseCommand):
    help = "Verify the portal's audit trail hash chain."

    def handle(self, *args, **options):
        checked, breaks = verify(AuditEvent.objects.order_by("id").iterator(chunk_size=2000))
        problems = [f"event {b.event_id}: {b.reason}" for b in breaks]
        head = AuditChainHead.objects.filter(id=1).first()
        if head is not None:
            newest = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first()
            if head.count != checked:
                problems.append(f"the chain head counts {head.count} events but {checked} are stored")
            if newest != head.last_hash:
                problems.append("the newest stored event is not the chain head (events were removed at the end)")
        for problem in problems:
            self.stderr.write(problem)
        if problems:
            raise CommandError(f"audit trail verification FAILED: {len(problems)} problem(s) in {checked} events")
        self.stdout.write(self.style.SUCCESS(f"audit trail OK: {checked} events verified"))
