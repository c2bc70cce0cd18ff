"""Check the audit trail's hash chain: exits non-zero when any event was altered, removed or inserted."""
from django.core.management.base import BaseCommand, CommandError

from audit.chain import GENESIS, verify
from audit.models import AuditChainHead, AuditEvent
from audit.retention import trail_anchor


class Command(BaseCommand):
    help = "Verify the portal's audit trail hash chain."

    def handle(self, *args, **options):
        # After retention pruned the start of the trail, the chain starts at the anchor an audit.prune
        # event (itself inside the chain) recorded; otherwise it starts at the genesis hash.
        anchor, pruned_total = trail_anchor()
        first_prev = AuditEvent.objects.order_by("id").values_list("prev_hash", flat=True).first()
        start_hash = anchor if anchor and first_prev == anchor else GENESIS
        if start_hash == GENESIS:
            pruned_total = 0
        checked, breaks = verify(AuditEvent.objects.order_by("id").iterator(chunk_size=2000), start_hash=start_hash)
        problems = [f"event {b.event_id}: {b.reason}" for b in breaks]
        head = AuditChainHead.objects.filter(id=1).first()
        if head is not None:
            newest = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first()
            if head.count != checked + pruned_total:
                problems.append(
                    f"the chain head counts {head.count} events but {checked} are stored"
                    + (f" and {pruned_total} were pruned" if pruned_total else "")
                )
            if newest != head.last_hash:
                problems.append("the newest stored event is not the chain head (events were removed at the end)")
        for problem in problems:
            self.stderr.write(problem)
        if problems:
            raise CommandError(f"audit trail verification FAILED: {len(problems)} problem(s) in {checked} events")
        pruned = f" ({pruned_total} older events pruned by retention)" if pruned_total else ""
        self.stdout.write(self.style.SUCCESS(f"audit trail OK: {checked} events verified{pruned}"))
