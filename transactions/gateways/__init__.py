"""Gateways, chosen per organization (``Organization.payment_gateway``)."""

from org_profile.enums import PaymentGateway as GatewayName

from ..selectors.saved_cards import CARD_ON_FILE_GATEWAYS
from .base import CardsOnFile, PaymentGateway, Payouts


def gateway_named(name: str) -> PaymentGateway:
    if name == GatewayName.SANDBOX:
        from .sandbox import SandboxGateway

        return SandboxGateway()
    if name == GatewayName.STRIPE:
        from .stripe import StripeGateway

        return StripeGateway()
    raise LookupError(f"No payment gateway called {name!r} is available.")


def gateway_for(organization) -> PaymentGateway:
    return gateway_named(organization.payment_gateway)


# The gateways that keep cards on file (every one LumaPay has, today): the selectors' list.
CARDS_ON_FILE_GATEWAYS = CARD_ON_FILE_GATEWAYS


def cards_on_file_for(organization) -> CardsOnFile:
    """The organization's gateway, for its cards on file (``LookupError`` if it keeps none)."""
    if organization.payment_gateway not in CARDS_ON_FILE_GATEWAYS:
        raise LookupError(f"The payment gateway {organization.payment_gateway!r} keeps no cards on file.")
    return gateway_named(organization.payment_gateway)


def payouts_for(organization) -> Payouts:
    """The organization's gateway, for its balance and payouts (every gateway LumaPay has pays out)."""
    return gateway_named(organization.payment_gateway)
