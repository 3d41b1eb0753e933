"""The platform's fee on a charge, from the organization's terms (set by operators in the admin).

The rule, the same for every gateway and every kind of charge: the percent of the charged amount,
rounded to the nearest cent with halves rounded up (2.5% of $10.10 is 25.25¢, so 25¢; of $10.30,
25.75¢, so 26¢), plus the fixed amount; never more than the charge itself, never below zero. A
hold captured at check-in pays the fee on what is captured, not on what was held.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from .models import Organization


def platform_fee_cents(organization: Organization, amount_cents: int) -> int:
    """The platform's fee, in cents, on a charge of ``amount_cents`` for this organization."""
    if amount_cents <= 0:
        return 0
    percent = Decimal(organization.platform_fee_percent or 0)
    part = (Decimal(amount_cents) * percent / Decimal(100)).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    fee = int(part) + int(organization.platform_fee_fixed_cents or 0)
    return max(0, min(fee, amount_cents))
