"""The payouts list's filters (django-filter), in the URL like the dashboard's.

Created dates are the organization's local dates against the payout's timestamp ("created to
Mar 31" keeps payouts created before local midnight at the start of Apr 1); arrival dates are the
bank's calendar dates, compared as dates. Amounts are typed in dollars and compared in cents. A
filter whose value does not validate is shown with its error and left out.
"""

from __future__ import annotations

from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import django_filters
from django.http import QueryDict

from lumapay.dates import format_date
from lumapay.money import format_cents
from org_profile.models import Organization
from transactions.filters import AnyOfFilter, Chip, DollarsField, LocalDateFilter, RangesFilterForm

from .enums import PayoutMethod, PayoutStatus
from .models import Payout

# A payout may be far larger than any one payment; the bound only keeps the number sane.
PAYOUT_AMOUNT_MAX_CENTS = 100_000_000_00

RANGE_FILTERS = (
    ("Created", "created_from", "created_to"),
    ("Arrival", "arrival_from", "arrival_to"),
    ("Amount", "amount_min", "amount_max"),
)


class PayoutDollarsField(DollarsField):
    """Dollars as a person types them ("500", "1,200.50", "$3000") → integer cents."""

    def max_cents(self) -> int:
        return PAYOUT_AMOUNT_MAX_CENTS


class PayoutCentsFilter(django_filters.Filter):
    field_class = PayoutDollarsField


class PayoutFilterForm(RangesFilterForm):
    RANGES = (
        ("created_from", "created_to", "The end date is before the start date."),
        ("arrival_from", "arrival_to", "The end date is before the start date."),
        ("amount_min", "amount_max", "The largest amount is less than the smallest."),
    )


class PayoutFilter(django_filters.FilterSet):
    created_from = LocalDateFilter(field_name="created_at", bound="from", label="Created from")
    created_to = LocalDateFilter(field_name="created_at", bound="to", label="Created to")
    arrival_from = django_filters.DateFilter(field_name="arrival_date", lookup_expr="gte", label="Arrival from")
    arrival_to = django_filters.DateFilter(field_name="arrival_date", lookup_expr="lte", label="Arrival to")
    amount_min = PayoutCentsFilter(field_name="amount_cents", lookup_expr="gte", label="Amount from ($)")
    amount_max = PayoutCentsFilter(field_name="amount_cents", lookup_expr="lte", label="Amount to ($)")
    status = AnyOfFilter(field_name="status", label="Status", choices=PayoutStatus.choices)
    method = django_filters.ChoiceFilter(
        field_name="method", label="Method", choices=PayoutMethod.choices, empty_label="Any method"
    )

    class Meta:
        model = Payout
        fields: list[str] = []
        form = PayoutFilterForm

    def __init__(self, data=None, *, organization: Organization, queryset=None, **kwargs):
        self.organization = organization
        # LocalDateFilter reads the parent's time zone.
        self.timezone = ZoneInfo(organization.timezone)
        if queryset is None:
            queryset = Payout.objects.filter(organization=organization)
        super().__init__(data, queryset=queryset, **kwargs)

    def _cleaned(self) -> dict:
        if not self.is_bound:
            return {}
        self.form.is_valid()
        return self.form.cleaned_data

    def used_params(self) -> QueryDict:
        """The query parameters of the filters in use (no page cursor), in a stable order."""
        params = QueryDict(mutable=True)
        data = self.data or {}
        for name in self.filters:
            values = data.getlist(name) if hasattr(data, "getlist") else ([data[name]] if name in data else [])
            values = [value for value in values if value not in ("", None)]
            if values:
                params.setlist(name, values)
        return params

    def valid_params(self) -> dict:
        """The filters that validated, as ``{name: value or [values]}``: what the export applied,
        recorded in its audit event."""
        data = self._cleaned()
        params = self.used_params()
        return {
            name: (params.getlist(name) if name == "status" else params.get(name))
            for name in params
            if data.get(name) not in (None, "", [])
        }

    def summary(self) -> list[tuple[str, str]]:
        """(label, value) for each valid filter in use, in words."""
        data = self._cleaned()
        pairs = []
        for label, low, high in RANGE_FILTERS:
            text = _range_text(data.get(low), data.get(high), self._render(low))
            if text:
                pairs.append((label, text))
        if data.get("status"):
            labels = dict(PayoutStatus.choices)
            pairs.append(("Status", ", ".join(str(labels.get(v, v)) for v in data["status"])))
        if data.get("method"):
            pairs.append(("Method", str(dict(PayoutMethod.choices).get(data["method"], data["method"]))))
        return pairs

    def chips(self) -> list[Chip]:
        """A removable chip per filter in use (a range is one chip; each chosen status one)."""
        data = self._cleaned()
        params = self.used_params()
        errors = self.form.errors if self.is_bound else {}
        pairs = [(name, value) for name in params for value in params.getlist(name)]

        def without(*names: str, value: str | None = None) -> str:
            return urlencode(
                [(name, v) for name, v in pairs if name not in names or (value is not None and v != value)]
            )

        chips = []
        for label, low, high in RANGE_FILTERS:
            text = _range_text(data.get(low), data.get(high), self._render(low))
            if text:
                chips.append(Chip(f"{label}: {text}", without(low, high)))
        labels = dict(PayoutStatus.choices)
        for value in data.get("status") or []:
            chips.append(Chip(f"Status: {labels.get(value, value)}", without("status", value=value)))
        if data.get("method"):
            chips.append(Chip(f"Method: {dict(PayoutMethod.choices).get(data['method'], data['method'])}", without("method")))
        for name in errors:
            if name in params:
                text = f"{self.form.fields[name].label}: {', '.join(params.getlist(name))} (not valid)"
                chips.append(Chip(text, without(name), is_invalid=True))
        return chips

    def _render(self, low: str):
        if low == "amount_min":
            return lambda cents: format_cents(cents, self.organization.currency)
        return format_date


def _range_text(low, high, render) -> str:
    if low is not None and high is not None:
        return f"{render(low)} – {render(high)}"
    if low is not None:
        return f"from {render(low)}"
    if high is not None:
        return f"up to {render(high)}"
    return ""
