"""The staff header's menu: every page a role may use is reachable from it. The Stripe settings
are reached from the organization profile, not from the menu."""

from django.urls import reverse

STRIPE_LINK = f'<a href="{reverse("transactions:stripe_connect")}" '


def test_administrators_find_the_stripe_settings_through_the_organization_profile(client_for, administrator):
    body = client_for(administrator).get(reverse("transactions:dashboard")).content.decode()
    profile = client_for(administrator).get(reverse("organization_profile")).content.decode()

    assert STRIPE_LINK not in body
    assert f'<a href="{reverse("organization_settings")}" >Settings</a>' in body
    assert f'<a href="{reverse("transactions:stripe_connect")}">Stripe settings</a>' in profile


def test_the_stripe_page_marks_the_organization_current_in_the_menu(client_for, administrator):
    body = client_for(administrator).get(reverse("transactions:stripe_connect")).content.decode()

    assert f'<a href="{reverse("organization_settings")}" aria-current="page">Settings</a>' in body
    assert f'<a href="{reverse("organization_profile")}">Organization profile</a>' in body
    assert f'<a href="{reverse("transactions:stripe_connect")}" aria-current="page">Stripe</a>' in body


def test_managers_and_sub_account_users_have_no_settings_in_the_menu(client_for, manager, staff_user):
    for user in (manager, staff_user):
        body = client_for(user).get(reverse("transactions:dashboard")).content.decode()

        assert STRIPE_LINK not in body
        assert reverse("organization_settings") not in body
        assert reverse("organization_profile") not in body
        assert '<nav class="mainnav" aria-label="Main">' in body


def test_an_administrators_settings_pages_share_one_menu(client_for, administrator):
    """The header keeps one Settings entry; the settings pages list each other under it."""
    pages = ["organization_settings", "organization_profile", "members", "locations", "ehr_connections:list",
             "transactions:collection_rules", "transactions:stripe_connect"]
    for name in pages:
        body = client_for(administrator).get(reverse(name)).content.decode()
        assert '<nav class="subnav" aria-label="Settings">' in body, name
        for other in pages:
            assert f'href="{reverse(other)}"' in body, (name, other)
    dashboard = client_for(administrator).get(reverse("transactions:dashboard")).content.decode()
    assert 'aria-label="Settings"' not in dashboard


def test_a_manager_has_collection_rules_in_the_menu_and_no_settings(client_for, manager):
    body = client_for(manager).get(reverse("transactions:dashboard")).content.decode()

    assert f'<a href="{reverse("transactions:collection_rules")}" >Collection rules</a>' in body
    assert ">Settings</a>" not in body
