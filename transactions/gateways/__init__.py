"""Gateways, chosen per organization (``Organization.payment_gateway``)."""

from org_profile.enums import PaymentGateway as GatewayName

from .base import PaymentGateway


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
