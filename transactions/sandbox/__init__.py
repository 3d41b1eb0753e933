"""The Sandbox payment processor, built in for trying LumaPay without money (see ``processor``).

It stands outside our ledger as Stripe does: its own books (``models``), its own hosted checkout
page (``views``, ``urls``, ``templates/sandbox/``), and events posted to the webhook path. Nothing
here imports LumaPay's gateways, services or tasks.
"""
