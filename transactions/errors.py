"""Refusals of the payments app. Each message is shown as is to the staff member who asked."""

from lumapay.errors import ApplicationError


class PaymentRequestError(ApplicationError):
    """A payment request cannot be sent, re-sent or cancelled as asked. ``extra["field"]`` names
    the form field the message belongs to, when there is one."""


class PatientUnreachableError(PaymentRequestError):
    """The patient has neither an e-mail address nor a mobile phone with SMS consent."""


class PaymentRequestStateError(PaymentRequestError):
    """The request is no longer open (paid, cancelled or expired), or its link has expired."""
