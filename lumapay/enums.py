"""Choices shared by every app: what an audit event records."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class AuditAction(models.TextChoices):
    """Every action the audit trail records, each with the one label staff read on every timeline
    and history. The values are stored in ``AuditEvent.action``: never rename one without a data
    migration. Add the action here before recording it."""

    # Payment requests (staff, automation and the delivery task)
    PAYMENT_REQUEST_SENT = "payment_request.sent", _("Payment request sent")
    PAYMENT_REQUEST_RESENT = "payment_request.resent", _("Payment request sent again")
    PAYMENT_REQUEST_CANCELLED = "payment_request.cancelled", _("Payment request cancelled")
    PAYMENT_REQUEST_EXPIRED = "payment_request.expired", _("Payment request expired")
    PAYMENT_REQUEST_PAID = "payment_request.paid", _("Payment request paid")
    PAYMENT_REQUEST_DELIVERY_SENT = "payment_request.delivery_sent", _("Message with the link handed to the provider")
    PAYMENT_REQUEST_DELIVERY_FAILED = "payment_request.delivery_failed", _("Message with the link not sent")
    PAYMENT_REQUEST_REMINDED = "payment_request.reminded", _("Payment reminder sent")
    PAYMENT_REQUEST_MOVED = "payment_request.moved", _("Payment request moved with its appointment")
    PAY_LINK_UNLOCKED = "pay_link.unlocked", _("Locked payment link unlocked by staff")
    PAY_LINK_REPLACED = "pay_link.replaced", _("Fresh payment link sent; the old link no longer works")
    # The patient on the pay page
    PAY_LINK_OPENED = "pay_link.opened", _("Payment link opened")
    PAY_LINK_VERIFICATION_PASSED = "pay_link.verification_passed", _("Date of birth confirmed")
    PAY_LINK_VERIFICATION_FAILED = "pay_link.verification_failed", _("Date of birth did not match")
    PAY_LINK_VERIFICATION_REFUSED = "pay_link.verification_refused", _("Date of birth check refused")
    PAY_LINK_LOCKED = "pay_link.locked", _("Payment link locked after too many wrong dates of birth")
    CHECKOUT_STARTED = "checkout.started", _("Checkout started")
    CHECKOUT_RESUMED = "checkout.resumed", _("Checkout resumed")
    # Receipts
    RECEIPT_SENT = "receipt.sent", _("Receipt e-mailed")
    RECEIPT_SKIPPED = "receipt.skipped", _("No receipt sent")
    RECEIPT_NOT_SENT = "receipt.not_sent", _("Receipt could not be e-mailed")
    RECEIPT_DOWNLOADED = "receipt.downloaded", _("Receipt downloaded")
    # Refunds, cards on file and holds
    REFUND_REQUESTED = "refund.requested", _("Refund requested")
    REFUND_RETRIED = "refund.retried", _("Refund sent to the processor again")
    SAVED_CARD_CONSENTED = "saved_card.consented", _("Consent to keep the card on file")
    SAVED_CARD_SAVED = "saved_card.saved", _("Card saved on file")
    SAVED_CARD_REMOVED = "saved_card.removed", _("Card on file removed")
    SAVED_CARD_CHARGE_REQUESTED = "saved_card.charge_requested", _("Card on file charged")
    SAVED_CARD_HOLD_REQUESTED = "saved_card.hold_requested", _("Amount held on the card on file")
    SAVED_CARD_REFUSED = "saved_card.refused", _("Charge, hold, capture or release of a card on file refused")
    AUTHORIZATION_CAPTURED = "authorization.captured", _("Held amount captured")
    AUTHORIZATION_RELEASED = "authorization.released", _("Hold released")
    AUTHORIZATION_RENEWED = "authorization.renewed", _("Hold renewed before it lapsed")
    AUTHORIZATION_RENEWAL_FAILED = "authorization.renewal_failed", _("Hold could not be renewed")
    APPOINTMENT_CHECKED_IN = "appointment.checked_in", _("Patient checked in")
    # Text messages: a patient's STOP / START to LumaPay's number (Twilio's inbound webhook)
    SMS_OPTED_OUT = "sms.opted_out", _("Patient opted out of text messages (replied STOP)")
    SMS_OPTED_IN = "sms.opted_in", _("Patient opted back in to text messages (replied START)")
    # Payment plans (staff, the patient on the pay page, and LumaPay charging the instalments)
    PAYMENT_PLAN_CREATED = "payment_plan.created", _("Payment plan set up")
    PAYMENT_PLAN_CANCELLED = "payment_plan.cancelled", _("Payment plan cancelled")
    PAYMENT_PLAN_INSTALMENT_PAID = "payment_plan.instalment_paid", _("Plan instalment paid")
    PAYMENT_PLAN_INSTALMENT_FAILED = "payment_plan.instalment_failed", _("Plan instalment declined; retry scheduled")
    PAYMENT_PLAN_NEEDS_ATTENTION = "payment_plan.needs_attention", _("Payment plan needs staff attention")
    PAYMENT_PLAN_COMPLETED = "payment_plan.completed", _("Payment plan paid in full")
    PAYMENT_PLAN_CARD_CHANGED = "payment_plan.card_changed", _("Payment plan moved to another card on file")
    # PHI access
    TRANSACTION_VIEWED = "transaction.viewed", _("Viewed by staff")
    TRANSACTIONS_EXPORTED = "transactions.exported", _("Exported to Excel")
    TRANSACTIONS_EXPORT_DOWNLOADED = "transactions.export_downloaded", _("Excel export downloaded")
    PATIENT_CREATED = "patient.created", _("Patient added")
    PATIENT_UPDATED = "patient.updated", _("Patient details changed")
    PATIENT_VIEWED = "patient.viewed", _("Patient viewed by staff")
    PHI_ACCESS_LOG_EXPORTED = "phi_access_log.exported", _("Access log exported")
    # The processor and the organization
    GATEWAY_EVENT_REPLAYED = "gateway_event.replayed", _("Processor event replayed")
    STRIPE_ACCOUNT_CREATED = "stripe.account_created", _("Stripe account created")
    STRIPE_ACCOUNT_UPDATED = "stripe.account_updated", _("Stripe account updated")
    STRIPE_ONBOARDING_STARTED = "stripe.onboarding_started", _("Stripe onboarding started")
    ORGANIZATION_PAYMENT_GATEWAY_CHANGED = "organization.payment_gateway_changed", _("Payment processor changed")
    ORGANIZATION_UPDATED = "organization.updated", _("Organization settings changed")
    COLLECTION_RULES_CHANGED = "collection_rules.changed", _("Collection rules changed")
    # The organization's profile (org_profile): legal, public, management and ownership
    ORGANIZATION_LEGAL_CHANGED = "organization.legal_changed", _("Legal information changed")
    ORGANIZATION_PUBLIC_CHANGED = "organization.public_changed", _("Public information changed")
    ORGANIZATION_PERSON_ADDED = "organization.person_added", _("Owner or controller added")
    ORGANIZATION_PERSON_CHANGED = "organization.person_changed", _("Owner or controller changed")
    ORGANIZATION_PERSON_REMOVED = "organization.person_removed", _("Owner or controller removed")
    STRIPE_ACCOUNT_PROFILE_PUSHED = "stripe.account_profile_pushed", _("Profile sent to Stripe")
    STRIPE_ACCOUNT_DISCONNECTED = "stripe.account_disconnected", _("Stripe account disconnected")
    # Payouts (payouts)
    PAYOUTS_EXPORTED = "payouts.exported", _("Payouts exported to CSV")
    PAYOUT_RECONCILED = "payout.reconciled", _("Payout reconciled")
    # Staff sign-in
    SIGN_IN_LOCKED = "sign_in.locked", _("Sign-in locked after too many wrong passwords")
    SIGN_IN_UNLOCKED = "sign_in.unlocked", _("Sign-in unlocked")
    # Two-step sign-in (a member's own account; recorded in each of their organizations)
    MFA_ENROLLED = "mfa.enrolled", _("Two-step sign-in set up with an authenticator app")
    MFA_BACKUP_CODES_GENERATED = "mfa.backup_codes_generated", _("New backup codes generated")
    MFA_BACKUP_CODE_USED = "mfa.backup_code_used", _("Signed in with a backup code")
    MFA_CODE_FAILED = "mfa.code_failed", _("Wrong sign-in code")
    MFA_RESET = "mfa.reset", _("Two-step sign-in reset: authenticator and backup codes removed")
    # EHR data in: syncs, HL7 messages, SFTP files and uploads (ehr_sync, uploads)
    RECORDS_IMPORTED = "records.imported", _("Records imported")
    APPOINTMENT_CHANGED = "appointment.changed", _("Appointment changed by the EHR")
    EHR_CONNECTION_CREATED = "ehr_connection.created", _("EHR connection added")
    EHR_CONNECTION_CHANGED = "ehr_connection.changed", _("EHR connection changed")
    EHR_CONNECTION_CREDENTIALS_CHANGED = "ehr_connection.credentials_changed", _("EHR connection credentials changed")
    EHR_SYNC_REQUESTED = "ehr_connection.sync_requested", _("EHR sync started by staff")
    HL7_MESSAGE_REPLAYED = "hl7_message.replayed", _("HL7 message replayed")
    UPLOAD_RECEIVED = "upload.received", _("File uploaded for import")
    UPLOAD_IMPORTED = "upload.imported", _("Uploaded file imported")
    UPLOAD_DISCARDED = "upload.discarded", _("Uploaded file discarded without importing")
    # Payments, refunds and reversals posted back to the EHR (transactions/services/ehr_postings.py)
    EHR_POSTING_POSTED = "ehr_posting.posted", _("Posted to the EHR")
    EHR_POSTING_FAILED = "ehr_posting.failed", _("Posting to the EHR failed")
    EHR_POSTING_RETRIED = "ehr_posting.retried", _("Posting to the EHR started again by staff")
    EHR_POSTING_FILE_DOWNLOADED = "ehr_posting.file_downloaded", _("Daily EHR posting file downloaded")
    # -- Help Center support tickets (helpcenter/tickets.py) --
    SUPPORT_TICKET_OPENED = "support_ticket.opened", _("Support ticket opened")
    SUPPORT_TICKET_REPLIED = "support_ticket.replied", _("Support ticket answered by the clinic")
    SUPPORT_TICKET_ANSWERED = "support_ticket.answered", _("Support ticket answered by LumaPay support")
    SUPPORT_TICKET_STATUS_CHANGED = "support_ticket.status_changed", _("Support ticket status changed")

    # ---- Intake forms (intake_forms/): added on branch intake-forms; the migration is made at merge ----
    FORM_PUBLISHED = "form.published", _("Intake form version published")
    FORM_SENT = "form.sent", _("Intake form sent to the patient")
    FORM_LINK_VERIFICATION_PASSED = "form.verification_passed", _("Form link: date of birth confirmed")
    FORM_LINK_VERIFICATION_FAILED = "form.verification_failed", _("Form link: wrong date of birth")
    FORM_LINK_LOCKED = "form.link_locked", _("Form link locked after too many wrong dates of birth")
    FORM_PAYMENT_DECLINED = "form.payment_declined", _("Form payment question declined by the patient")
    FORM_COMPLETED = "form.completed", _("Intake form completed by the patient")
    FORM_LINK_DELIVERY_SENT = "form.link_delivery_sent", _("Message with the form's link handed to the provider")
    FORM_LINK_DELIVERY_FAILED = "form.link_delivery_failed", _("Message with the form's link not sent")


def audit_action_label(action: str) -> str:
    """The action's label; an action no longer listed (from older rows) in words."""
    try:
        return str(AuditAction(action).label)
    except ValueError:
        text = action.replace(".", " ").replace("_", " ").strip()
        return text[:1].upper() + text[1:]
