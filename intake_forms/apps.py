from django.apps import AppConfig


class IntakeFormsConfig(AppConfig):
    name = "intake_forms"
    verbose_name = "Intake forms"

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from ehr_sync.patient_panels import patient_panels_register
        from transactions.models import PaymentRequest
        from transactions.enums import MessagePurpose
        from transactions.pay_page_panels import pay_page_panels_register
        from transactions.services.patient_messages import RegisteredMessage, patient_message_register
        from transactions.transaction_panels import transaction_panels_register

        from .panels import FORM_PATIENT_PANELS, FORM_PAY_PAGE_PANELS, FORM_TRANSACTION_PANELS, copay_request_made
        from .services import form_link_message_outcome, form_link_message_render

        patient_panels_register(FORM_PATIENT_PANELS)
        pay_page_panels_register(FORM_PAY_PAGE_PANELS)
        transaction_panels_register(FORM_TRANSACTION_PANELS)
        patient_message_register(
            MessagePurpose.FORM_LINK,
            RegisteredMessage(render=form_link_message_render, outcome=form_link_message_outcome),
        )
        post_save.connect(copay_request_made, sender=PaymentRequest, dispatch_uid="intake_forms.copay_request_made")
