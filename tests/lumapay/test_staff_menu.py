"""The staff header's menu: every page a role may use is reachable from it. The Stripe settings
are reached from the organization profile, not from the menu."""

from django.urls import reverse

STRIPE_LINK = f'<a href="{reverse("transactions:stripe_connect")}" '


def test_administrators_find_the_stripe_settings_through_the_organization_profile(client_for, administrator):
    body = client_for(administrator).get(reverse("transactions:dashboard")).content.decode()
    profile = client_for(administrator).get(reverse("organization_profile")).content.decode()

    assert STRIPE_LINK not in body
    assert f'<a href="{reverse("organization_settings")}" >Organization</a>' in body
    assert f'<a href="{reverse("transactions:stripe_connect")}">Stripe settings</a>' in profile


def test_the_stripe_page_marks_the_organization_current_in_the_menu(client_for, administrator):
    body = client_for(administrator).get(reverse("transactions:stripe_connect")).content.decode()

    assert f'<a href="{reverse("organization_settings")}" aria-current="page">Organization</a>' in body
    assert f'<a href="{reverse("organization_profile")}">Organization profile</a>' in body


def test_managers_and_sub_account_users_have_no_settings_in_the_menu(client_for, manager, staff_user):
    for user in (manager, staff_user):
        body = client_for(user).get(reverse("transactions:dashboard")).content.decode()

        assert STRIPE_LINK not in body
        assert reverse("organization_settings") not in body
        assert reverse("organization_profile") not in body
        assert '<nav class="mainnav" aria-label="Main">' in body
