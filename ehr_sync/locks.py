"""Every row lock in the patient mirror, in one place. Call these only inside ``transaction.atomic()``."""

from .models import Patient


def patient_lock(*, patient_id: int) -> Patient:
    return Patient.objects.select_for_update().get(pk=patient_id)
