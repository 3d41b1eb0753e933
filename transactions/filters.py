"""The dashboard's filters (django-filter) over the transactions a member may see.

Every filter lives in the URL's query string, so a filtered view can be bookmarked, shared and
exported exactly. Dates are the organization's local dates: "created to Mar 31" means before
midnight at the start of Apr 1 in the organization's timezone. Amounts are typed in dollars and
compared in cents. A filter whose value does not validate is shown with its error and left out.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import django_filters
from django import forms
from django.conf import settings
from django.db.models import F, Lookup, Q, QuerySet
from django.http import QueryDict

from ehr_sync.selectors import patient_ids_search, patients_search
from lumapay.dates import format_date
from lumapay.money import AmountError, cents_from_text, format_cents
from org_profile.enums import PaymentGateway
from org_profile.models import Membership
from org_profile.selectors import (
    location_ids_visible,
    locations_for,
    scope_to_locations,
)

from .enums import PaymentRequestKind, TransactionStatus
from .models import (
    DailyAmountTotal,
    DailyCardTotal,
    DailyPaidTotal,
    DailyTotal,
    Transaction,
    amount_band,
)
from .selectors.dashboard import SummedAhead, billing_items_of
from .selectors.ledger import transactions_for

# The brands gateways report (Stripe's names; the Sandbox uses the same).
CARD_BRANDS = [
    ("visa", "Visa"),
    ("mastercard", "Mastercard"),
    ("amex", "American Express"),
    ("discover", "Discover"),
    ("diners", "Diners Club"),
    ("jcb", "JCB"),
    ("unionpay", "UnionPay"),
]
HAS_ERRORS_CHOICES = [("", "Any"), ("true", "With errors"), ("false", "Without errors")]
MULTIPLE_CHOICE_FILTERS = ("status", "kind", "billing_item", "location")
# The filters the daily totals can answer exactly (DailyTotal's columns, or DailyCardTotal's or
# DailyAmountTotal's for a member who sees every location); any other filter in use (patient,
# billing item, location together with vendor or card brand, amount together with anything but the
# paid dates) sends the totals to the transactions.
DAILY_TOTAL_FILTERS = frozenset(
    {"created_from", "created_to", "paid_from", "paid_to", "status", "kind", "location", "has_errors"}
)
DAILY_CARD_TOTAL_FILTERS = frozenset(
    {"created_from", "created_to", "paid_from", "paid_to", "status", "kind", "vendor", "card_brand", "has_errors"}
)
DAILY_AMOUNT_TOTAL_FILTERS = frozenset({"amount_min", "amount_max", "paid_from", "paid_to"})
DAILY_PAID_TOTAL_FILTERS = frozenset({"paid_from", "paid_to"})


# A patient search that finds at most this many patients filters the transactions by a list of
# their ids; more stay a subquery (see ``TransactionFilter.filter_patient``).
PATIENT_IDS_LISTED_MAX = 20_000


class IsOneOf(Lookup):
    """``lhs = ANY(%s::<lhs's type>[])`` with the values as one array parameter: one placeholder
    whatever their number (``__in`` with a list writes one per value). The array has the column's
    own type so that PostgreSQL hashes it (it cannot for bigint against integer[], and then scans
    the list for every row). Used as an expression, never registered."""

    lookup_name = "is_one_of"
    prepare_rhs = False

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        db_type = self.lhs.output_field.db_type(connection)
        return f"{lhs} = ANY(%s::{db_type}[])", [*lhs_params, list(self.rhs)]


# Filters the bar shows inline; every other one is under "More filters" (templates/transactions/dashboard/list.html).
INLINE_FILTERS = ("q", "created_from", "created_to", "status")
RANGE_FILTERS = (
    ("Created", "created_from", "created_to"),
    ("Paid", "paid_from", "paid_to"),
    ("Amount", "amount_min", "amount_max"),
)


@dataclass(frozen=True)
class Chip:
    """One active filter, in words, with the query string of the same view without it."""

    text: str
    query_without: str
    is_invalid: bool = False


class DollarsField(forms.CharField):
    """Dollars as a person types them ("50", "49.99", "$1,200") → integer cents, at most
    ``max_cents`` (a payment's limit unless a subclass sets its own)."""

    def max_cents(self) -> int:
        return settings.PAYMENT_REQUEST_MAX_CENTS

    def to_python(self, value):
        text = super().to_python(value)
        if not text:
            return None
        try:
            return cents_from_text(text, max_cents=self.max_cents())
        except AmountError as error:
            raise forms.ValidationError(error.message, code="amount")


class CentsFilter(django_filters.Filter):
    field_class = DollarsField


class LocalDateFilter(django_filters.DateFilter):
    """A date in the organization's timezone against a timestamp column.

    ``bound="from"`` keeps rows at or after that day's local midnight; ``bound="to"`` keeps the
    whole day, up to (not including) the next local midnight.
    """

    def __init__(self, *args, bound: str, **kwargs):
        self.bound = bound
        super().__init__(*args, **kwargs)

    def filter(self, queryset, value):
        if value is None:
            return queryset
        tz = self.parent.timezone
        if self.bound == "from":
            return queryset.filter(**{f"{self.field_name}__gte": local_midnight(value, tz)})
        return queryset.filter(**{f"{self.field_name}__lt": local_midnight(value + timedelta(days=1), tz)})


class AnyOfFilter(django_filters.MultipleChoiceFilter):
    """Any of the chosen values, as one ``IN (…)``; never DISTINCT (no join multiplies rows)."""

    def __init__(self, *args, **kwargs):
        kwargs["distinct"] = False
        super().__init__(*args, **kwargs)

    def filter(self, queryset, value):
        if not value:
            return queryset
        return queryset.filter(**{f"{self.field_name}__in": list(value)})


class RangesFilterForm(forms.Form):
    """A filter form whose ``RANGES`` (low field, high field, message) must not run backwards."""

    RANGES: tuple[tuple[str, str, str], ...] = ()

    def clean(self):
        data = super().clean()
        for low, high, message in self.RANGES:
            if data.get(low) is not None and data.get(high) is not None and data[low] > data[high]:
                self.add_error(high, message)
        return data


class TransactionFilterForm(RangesFilterForm):
    RANGES = (
        ("created_from", "created_to", "The end date is before the start date."),
        ("paid_from", "paid_to", "The end date is before the start date."),
        ("amount_min", "amount_max", "The largest amount is less than the smallest."),
    )


class TransactionFilter(django_filters.FilterSet):
    # The template writes the inputs out itself (list.html); the form parses and validates.
    q = django_filters.CharFilter(label="Patient", method="filter_patient")
    created_from = LocalDateFilter(field_name="created_at", bound="from", label="Created from")
    created_to = LocalDateFilter(field_name="created_at", bound="to", label="Created to")
    paid_from = LocalDateFilter(field_name="paid_at", bound="from", label="Paid from")
    paid_to = LocalDateFilter(field_name="paid_at", bound="to", label="Paid to")
    amount_min = CentsFilter(field_name="amount_cents", lookup_expr="gte", label="Amount from ($)")
    amount_max = CentsFilter(field_name="amount_cents", lookup_expr="lte", label="Amount to ($)")
    status = AnyOfFilter(field_name="status", label="Status", choices=TransactionStatus.choices)
    kind = AnyOfFilter(field_name="kind", label="Kind", choices=PaymentRequestKind.choices)
    billing_item = AnyOfFilter(field_name="billing_item", label="Billing item", choices=[])
    location = AnyOfFilter(field_name="location_id", label="Location", choices=[])
    vendor = django_filters.ChoiceFilter(
        field_name="vendor", label="Vendor", choices=PaymentGateway.choices, empty_label="Any vendor"
    )
    card_brand = django_filters.ChoiceFilter(
        field_name="card_brand", label="Card brand", choices=CARD_BRANDS, empty_label="Any card"
    )
    has_errors = django_filters.BooleanFilter(
        label="Errors",
        method="filter_has_errors",
        widget=django_filters.widgets.BooleanWidget,  # "true" / "false" in the URL
    )

    class Meta:
        model = Transaction
        fields: list[str] = []
        form = TransactionFilterForm

    def __init__(self, data=None, *, membership: Membership, queryset: QuerySet | None = None, **kwargs):
        self.membership = membership
        self.organization = membership.organization
        self.timezone = ZoneInfo(self.organization.timezone)
        if queryset is None:
            queryset = transactions_for(membership=membership)
        super().__init__(data, queryset=queryset, **kwargs)
        # Choices are lists read once (one query each), not querysets that each render re-reads.
        self.filters["location"].extra["choices"] = [
            (str(location.pk), location.name) for location in locations_for(membership=membership)
        ]
        self.filters["billing_item"].extra["choices"] = [
            (item, item) for item in billing_items_of(organization=self.organization)
        ]

    def get_form_class(self):
        form_class = super().get_form_class()
        # The form's fields were built for this filterset alone (each filter makes its own): the
        # form's deep copy of them, their widgets and choices, on every page, is work for nothing.
        form_class.base_fields = _FieldsOwned(form_class.base_fields)
        return form_class

    # -- filters with their own SQL ----------------------------------------------------------------

    def filter_patient(self, queryset, name, value):
        """The transactions of the patients the Hub's search finds for the same words (name in
        any order or as "Last, First", EHR id, e-mail or phone; case and accents ignored): one
        definition, ``ehr_sync.selectors.patients_search``, as ``patient_id IN (…)``."""
        if not value.strip():
            return queryset
        # The patients found once, as a list: the page and the totals then both read
        # ``patient_id = ANY(…)`` instead of each searching the patients again, and the planner
        # knows how many there are (with a subquery it guessed a third of them for "smith" and
        # walked a year of transactions checking each one's patient: 75 ms instead of 20). Found
        # with the trigram indexes, which row-level security would not use (``patient_ids_search``);
        # the transactions are then read under it. A search that finds very many patients (a
        # single common letter) stays a subquery.
        ids = patient_ids_search(organization=self.organization, query=value, limit=PATIENT_IDS_LISTED_MAX + 1)
        if len(ids) > PATIENT_IDS_LISTED_MAX:
            patients = patients_search(organization=self.organization, query=value).order_by()
            return queryset.filter(patient_id__in=patients.values("id"))
        return queryset.filter(IsOneOf(F("patient_id"), ids))

    def filter_has_errors(self, queryset, name, value):
        """Transactions with (or without) an unresolved problem: a failed charge or refund that no
        later success resolved (``transactions.problems``). A cached column the ledger's
        recalculation keeps, so the filter reads the transaction row alone."""
        if value is None:
            return queryset
        return queryset.filter(has_unresolved_problems=value)

    # -- the same set, summed ahead -----------------------------------------------------------

    def daily_totals(self) -> SummedAhead | None:
        """The daily-total cells holding exactly the filtered set (``DailyPaidTotal`` with no filter
        or the paid dates alone, ``DailyTotal``, ``DailyCardTotal`` for vendor and card-brand
        filters, ``DailyAmountTotal`` for the amount filter), or None when
        a filter in use is not one of their columns. Local dates compare as dates: the cells are
        local days."""
        data = self._cleaned()
        used = self.used_filters()
        sees_every_location = location_ids_visible(membership=self.membership) is None
        if used <= DAILY_PAID_TOTAL_FILTERS and sees_every_location:
            # The unfiltered page and the paid dates alone: one cell per day paid (730 for two
            # years, against 14,200 amount cells for the throughput benchmark's organization).
            cells = DailyPaidTotal.objects.filter(organization_id=self.organization.pk)
            for name, lookup in (("paid_from", "paid_on__gte"), ("paid_to", "paid_on__lte")):
                if data.get(name) is not None:
                    cells = cells.filter(**{lookup: data[name]})
            return SummedAhead(cells)
        if used & {"amount_min", "amount_max"}:
            if used - DAILY_AMOUNT_TOTAL_FILTERS or not sees_every_location:
                return None
            return self._amount_totals(data)
        if not used - DAILY_CARD_TOTAL_FILTERS and sees_every_location:
            # Also the date, status and errors filters of a member who sees every location: the
            # kind, vendor and card-brand cells are fewer (60,200 against 68,800 for the
            # benchmark's largest organization), so they sum faster.
            cells = DailyCardTotal.objects.filter(organization_id=self.organization.pk)
            for name in ("vendor", "card_brand"):
                if data.get(name):
                    cells = cells.filter(**{name: data[name]})
            if data.get("kind"):
                cells = cells.filter(kind__in=list(data["kind"]))
        elif not used - DAILY_TOTAL_FILTERS:
            cells = scope_to_locations(
                DailyTotal.objects.filter(organization_id=self.organization.pk), membership=self.membership
            )
            for name, field in (("kind", "kind"), ("location", "location_id")):
                if data.get(name):
                    cells = cells.filter(**{f"{field}__in": list(data[name])})
        else:
            return None
        for name, lookup in (("created_from", "created_on__gte"), ("created_to", "created_on__lte"),
                             ("paid_from", "paid_on__gte"), ("paid_to", "paid_on__lte")):
            if data.get(name) is not None:
                cells = cells.filter(**{lookup: data[name]})
        if data.get("status"):
            cells = cells.filter(status__in=list(data["status"]))
        if data.get("has_errors") is not None:
            cells = cells.filter(has_unresolved_problems=data["has_errors"])
        return SummedAhead(cells)

    def used_filters(self) -> set[str]:
        """The names of the filters in use with a valid value."""
        return {name for name, value in self._cleaned().items() if value not in (None, "", [])}

    def _amount_totals(self, data: dict) -> SummedAhead:
        """The amount range (with the paid dates, if any) as the ``DailyAmountTotal`` cells whose
        band lies inside it, and the filtered transactions in the part of a band a bound cuts: a
        bound with cents under $100 ($20.50), or a bound from $100 on that is not a band's edge
        ($150). Bands do not overlap, so each transaction is counted once."""
        low, high = data.get("amount_min"), data.get("amount_max")
        cells = DailyAmountTotal.objects.filter(organization_id=self.organization.pk)
        if low is not None:
            cells = cells.filter(amount_low__gte=low)
        if high is not None:
            cells = cells.filter(amount_high__lte=high)
        for name, lookup in (("paid_from", "paid_on__gte"), ("paid_to", "paid_on__lte")):
            if data.get(name) is not None:
                cells = cells.filter(**{lookup: data[name]})
        cut: list[tuple[int, int]] = []  # inclusive ranges of cents read from the transactions
        if low is not None and amount_band(low)[0] < low:
            cut.append((low, amount_band(low)[1] if high is None else min(high, amount_band(low)[1])))
        if high is not None and amount_band(high)[1] > high:
            part = (amount_band(high)[0] if low is None else max(low, amount_band(high)[0]), high)
            if part not in cut:
                cut.append(part)
        if not cut:
            return SummedAhead(cells)
        in_cut = Q()
        for first, last in cut:
            in_cut |= Q(amount_cents__gte=first, amount_cents__lte=last)
        return SummedAhead(cells, rest=self.qs.filter(in_cut))

    # -- what the filters were, for links, the export and its Filters sheet -----------------------

    def used_params(self) -> QueryDict:
        """The query parameters of the filters in use (nothing else: no page cursor), in a stable
        order, for links that keep the filters and for the export."""
        params = QueryDict(mutable=True)
        data = self.data or {}
        for name in self.filters:
            values = data.getlist(name) if hasattr(data, "getlist") else _as_list(data.get(name))
            values = [value for value in values if value not in ("", None)]
            if values:
                params.setlist(name, values)
        return params

    def form_choices(self) -> tuple[dict[str, list], dict[str, set[str]]]:
        """The choices of each choice filter (with "any" first for the single ones) and the values
        chosen in each multiple one, for the template to write the inputs out itself."""
        choices = {name: list(self.filters[name].extra["choices"]) for name in MULTIPLE_CHOICE_FILTERS}
        choices["vendor"] = [("", "Any vendor"), *PaymentGateway.choices]
        choices["card_brand"] = [("", "Any card"), *CARD_BRANDS]
        choices["has_errors"] = list(HAS_ERRORS_CHOICES)
        data = self.data or QueryDict()
        chosen = {
            name: set(data.getlist(name) if hasattr(data, "getlist") else _as_list(data.get(name)))
            for name in MULTIPLE_CHOICE_FILTERS
        }
        return choices, chosen

    def summary(self) -> list[tuple[str, str]]:
        """(label, value) for each valid filter in use, in words: the export's Filters sheet and the
        audit event show exactly this."""
        data = self._cleaned()
        pairs: list[tuple[str, str]] = []
        if data.get("q"):
            pairs.append(("Patient", data["q"].strip()))
        for label, low, high in (("Created", "created_from", "created_to"), ("Paid", "paid_from", "paid_to")):
            text = _range_text(data.get(low), data.get(high), _date_text)
            if text:
                pairs.append((label, text))
        amount = _range_text(data.get("amount_min"), data.get("amount_max"), lambda cents: format_cents(cents, self.organization.currency))
        if amount:
            pairs.append(("Amount", amount))
        for name in MULTIPLE_CHOICE_FILTERS:
            if data.get(name):
                labels = dict(self.filters[name].extra["choices"])
                pairs.append((str(self.filters[name].label), ", ".join(str(labels.get(v, v)) for v in data[name])))
        if data.get("vendor"):
            pairs.append(("Vendor", str(dict(PaymentGateway.choices).get(data["vendor"], data["vendor"]))))
        if data.get("card_brand"):
            pairs.append(("Card brand", dict(CARD_BRANDS).get(data["card_brand"], data["card_brand"])))
        if data.get("has_errors") is not None:
            pairs.append(("Errors", "With errors" if data["has_errors"] else "Without errors"))
        return pairs

    def chips(self) -> list[Chip]:
        """A removable chip per active filter: one per range, one per chosen value of a multiple
        filter, one per single filter. A value that did not validate gets a chip too (it is left
        out of the list), so it can be removed as easily."""
        data = self._cleaned()
        params = self.used_params()
        errors = self.form.errors if self.is_bound else {}

        # The filters as (name, value) pairs, once: each chip leaves some out (a QueryDict copy and
        # encoding per chip cost ~0.5 ms each with every filter in use).
        pairs = [(name, value) for name in params for value in params.getlist(name)]

        def without(*names: str, value: str | None = None) -> str:
            return urlencode(
                [(name, v) for name, v in pairs if name not in names or (value is not None and v != value)]
            )

        chips: list[Chip] = []
        if data.get("q"):
            chips.append(Chip(f"Patient: {data['q'].strip()}", without("q")))
        for label, low, high in RANGE_FILTERS:
            render = self._amount_text if low == "amount_min" else _date_text
            text = _range_text(data.get(low), data.get(high), render)
            if text:
                chips.append(Chip(f"{label}: {text}", without(low, high)))
        for name in MULTIPLE_CHOICE_FILTERS:
            labels = dict(self.filters[name].extra["choices"])
            for value in data.get(name) or []:
                chips.append(Chip(f"{self.filters[name].label}: {labels.get(value, value)}", without(name, value=value)))
        if data.get("vendor"):
            chips.append(Chip(f"Vendor: {dict(PaymentGateway.choices).get(data['vendor'], data['vendor'])}", without("vendor")))
        if data.get("card_brand"):
            chips.append(Chip(f"Card: {dict(CARD_BRANDS).get(data['card_brand'], data['card_brand'])}", without("card_brand")))
        if data.get("has_errors") is not None:
            chips.append(Chip("With errors" if data["has_errors"] else "Without errors", without("has_errors")))
        for name in errors:
            if name in params:
                text = f"{self.form.fields[name].label}: {', '.join(params.getlist(name))} (not valid)"
                chips.append(Chip(text, without(name), is_invalid=True))
        return chips

    def more_filters_in_use(self) -> int:
        """How many filters under "More filters" are in use (a range counts once), for its label."""
        range_of = {name: label for label, low, high in RANGE_FILTERS for name in (low, high)}
        return len({range_of.get(name, name) for name in self.used_params() if name not in INLINE_FILTERS})

    def _amount_text(self, cents: int) -> str:
        return format_cents(cents, self.organization.currency)

    def _cleaned(self) -> dict:
        """The values that validated (an invalid filter is left out, as it is from the list)."""
        if not self.is_bound:
            return {}
        self.form.is_valid()
        return self.form.cleaned_data

    def date_range(self, prefix: str) -> tuple[date | None, date | None]:
        """The valid (from, to) local dates of the ``created`` or ``paid`` filter."""
        data = self._cleaned()
        return data.get(f"{prefix}_from"), data.get(f"{prefix}_to")


class _FieldsOwned(dict):
    """A form's fields that only one form instance uses: its ``copy.deepcopy`` (Django's forms copy
    their class's fields for each instance) keeps the same field objects."""

    def __deepcopy__(self, memo):
        return dict(self)


class _FiltersCopiedShallow(dict):
    """A filterset's filters, copied for each instance (django-filter deep-copies them: ~1 ms of
    each dashboard page, choices, labels and widgets included) one level deep instead: each filter
    object and its ``extra`` (where an instance puts its choices), not what they hold, which no
    instance changes."""

    def __deepcopy__(self, memo):
        copies = {}
        for name, original in self.items():
            copied = copy.copy(original)
            copied.extra = dict(original.extra)
            copied.__dict__.pop("_field", None)  # a field is built for each instance, from its own extra
            if copied.method is not None:
                copied.method = copied.method  # its FilterMethod bound to the copy (and its parent)
            copies[name] = copied
        return copies


TransactionFilter.base_filters = _FiltersCopiedShallow(TransactionFilter.base_filters)


def query_from_params(params: dict | None) -> QueryDict:
    """Stored ``{name: [values]}`` (an export's filters) back into query parameters."""
    data = QueryDict(mutable=True)
    for name, values in (params or {}).items():
        data.setlist(name, [str(value) for value in (values if isinstance(values, list) else [values])])
    return data


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=tz)


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _date_text(day: date) -> str:
    return format_date(day)


def _range_text(low, high, render) -> str:
    if low is not None and high is not None:
        return f"{render(low)} – {render(high)}"
    if low is not None:
        return f"from {render(low)}"
    if high is not None:
        return f"up to {render(high)}"
    return ""
