"""A case's statuses and what each means.

受理 accepted → 立案 filed (or 不予立案 rejected) → 派遣 dispatched → 处置 handling →
核查 verifying → 核查通过 verified → 结案 closed; 退回 returned waits for re-dispatch, and a
case merged into another (merged) is closed with it.
"""

from __future__ import annotations

from yiwang.core.i18n import N_

ACCEPTED = "accepted"
FILED = "filed"
REJECTED = "rejected"
DISPATCHED = "dispatched"
HANDLING = "handling"
RETURNED = "returned"
VERIFYING = "verifying"
VERIFIED = "verified"
CLOSED = "closed"
MERGED = "merged"

TITLES = {
    ACCEPTED: N_("Accepted"),
    FILED: N_("Filed"),
    REJECTED: N_("Not filed"),
    DISPATCHED: N_("Dispatched"),
    HANDLING: N_("Being handled"),
    RETURNED: N_("Sent back"),
    VERIFYING: N_("Awaiting verification"),
    VERIFIED: N_("Verified"),
    CLOSED: N_("Closed"),
    MERGED: N_("Merged"),
}

#: still needing someone's work
OPEN = (ACCEPTED, FILED, DISPATCHED, HANDLING, RETURNED, VERIFYING, VERIFIED)
#: with departments at work (the SLA clock runs unless suspended)
IN_HAND = (DISPATCHED, HANDLING, VERIFYING, VERIFIED)
#: finished for good (a closed case may still be reopened by its reporter)
ENDED = (REJECTED, CLOSED, MERGED)
