"""What patients see comes from the profile: an administrator changes the public name, logo and
support contacts, and the next pay page and PDF receipt show them."""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from pypdf import PdfReader

from transactions.services.receipt_documents import receipt_pdf

from ..transactions.pay_support import pay_url, payment_request_make
from ..transactions.payments import paid_transaction
from .test_profile_logo import image_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def profiled(client_for, organization, administrator):
    """The administrator sets what patients see, through the profile page."""
    client = client_for(administrator)
    response = client.post(
        reverse("organization_public"),
        {"public_name": "Riverside Family Care", "support_phone": "+1 312 555 0188", "support_email": "help@riverside.example",
         "website": "riverside.example", "statement_descriptor": "RIVERSIDE CARE"},
    )  # fmt: skip
    assert response.status_code == 302
    logo = SimpleUploadedFile("logo.webp", image_bytes("WEBP", size=(600, 200)), content_type="image/webp")
    assert client.post(reverse("organization_logo"), {"logo": logo}).status_code == 302
    organization.refresh_from_db()
    return organization


def test_the_next_receipt_shows_the_public_name_logo_and_support_contacts(profiled):
    transaction = paid_transaction(organization=profiled)
    transaction.refresh_from_db()

    pdf = receipt_pdf(transaction=transaction)

    reader = PdfReader(io.BytesIO(pdf))
    lines = [line.strip() for page in reader.pages for line in page.extract_text().splitlines()]
    assert lines[0] == "Riverside Family Care"
    assert "+1 312 555 0188 · help@riverside.example · https://riverside.example" in lines
    assert "Questions about this payment? Contact Riverside Family Care." in lines
    images = reader.pages[0].images
    assert len(images) == 1
    assert images[0].image.size == (512, 171)  # the stored logo, not the 600-pixel upload


def test_a_receipt_without_a_logo_has_no_image(organization):
    transaction = paid_transaction(organization=organization)
    transaction.refresh_from_db()

    reader = PdfReader(io.BytesIO(receipt_pdf(transaction=transaction)))

    assert len(reader.pages[0].images) == 0


def test_the_pay_page_shows_the_public_name_logo_and_support_contacts(profiled):
    payment_request = payment_request_make(organization=profiled)

    body = Client().get(pay_url("verify", payment_request)).content.decode()

    assert '<div class="clinic">Riverside Family Care</div>' in body
    assert f'<img class="clinic-logo" src="{profiled.logo_data_uri}"' in body
    assert '<a href="tel:+1 312 555 0188">+1 312 555 0188</a>' in body
    assert '<a href="mailto:help@riverside.example">help@riverside.example</a>' in body
    assert '<a href="https://riverside.example" rel="noopener">https://riverside.example</a>' in body
