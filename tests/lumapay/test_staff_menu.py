"""The staff header's menu: every page a role may use is reachable from it."""

from django.urls import reverse

STRIPE_LINK = f'<a href="{reverse("transactions:stripe_connect")}" '


def test_administrators_find_the_stripe_settings_in_the_menu(client_for, administrator):
    body = client_for(administrator).get(reverse("transactions:dashboard")).content.decode()

    assert f'{STRIPE_LINK}>Stripe</a>' in body
    assert f'<a href="{reverse("organization_settings")}" >Organization</a>' in body


def test_the_stripe_page_is_marked_current_in_the_menu(client_for, administrator):
    body = client_for(administrator).get(reverse("transactions:stripe_connect")).content.decode()

    assert f'{STRIPE_LINK}aria-current="page">Stripe</a>' in body


def test_managers_and_sub_account_users_have_no_settings_in_the_menu(client_for, manager, staff_user):
    for user in (manager, staff_user):
        body = client_for(user).get(reverse("transactions:dashboard")).content.decode()

        assert STRIPE_LINK not in body
        assert reverse("organization_settings") not in body
        assert '<nav class="mainnav" aria-label="Main">' in body
