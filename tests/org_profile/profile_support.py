"""What the organization profile's tests share: a valid owner/controller, and reading raw columns."""

from django.db import connection

PERSON = {
    "first_name": "Priya",
    "last_name": "Natarajan",
    "title": "Medical Director",
    "email": "priya@riverside.example",
    "phone": "(312) 555-0131",
    "date_of_birth": "1974-03-18",
    "ssn_last4": "0418",
    "address_line1": "2101 Monument Avenue",
    "address_line2": "",
    "city": "Chicago",
    "state": "IL",
    "postal_code": "60601-1234",
    "is_owner": True,
    "ownership_percent": "60",
    "is_controller": True,
}

EIN = "27-4815162"


def raw_row(table: str, pk: int) -> str:
    """Every column of a row as PostgreSQL stores it, as one text (not through the ORM)."""
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT t::text FROM "{table}" AS t WHERE id = %s', [pk])
        return cursor.fetchone()[0]
