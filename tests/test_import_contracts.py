"""The import contracts of pyproject.toml ([tool.importlinter]) hold, so plain pytest catches an
import that runs the wrong way (``make test`` also runs ``lint-imports`` first)."""

import pkgutil
import tomllib
from pathlib import Path

from importlinter.cli import lint_imports

import lumapay

from ehr_sync.patient_panels import patient_panel_templates

BASE_DIR = Path(__file__).resolve().parents[1]


def test_imports_run_the_way_the_contracts_say(monkeypatch):
    # given the checkout as the current directory (import-linter reads pyproject.toml there)
    monkeypatch.chdir(BASE_DIR)

    # when the contracts are checked
    exit_code = lint_imports(config_filename=str(BASE_DIR / "pyproject.toml"), no_cache=True, no_logo=True)

    # then every contract is kept
    assert exit_code == 0


def test_every_module_of_the_project_package_has_a_place_in_the_app_layers():
    # given the layers of the apps contract
    config = tomllib.loads((BASE_DIR / "pyproject.toml").read_text())["tool"]["importlinter"]
    (apps,) = [contract for contract in config["contracts"] if contract["id"] == "apps"]
    placed = {name.strip() for layer in apps["layers"] for name in layer.replace("|", ":").split(":")}

    # when lumapay's modules are listed
    modules = {f"lumapay.{module.name}" for module in pkgutil.iter_modules(lumapay.__path__)}

    # then each is on top (composition) or at the bottom (helpers), so none escapes the contract
    assert sorted(modules - placed) == []


def test_transactions_supplies_the_payment_panels_of_the_patient_pages():
    # given the installed apps, ready
    # when the patient pages ask which partials fill their slots
    templates = patient_panel_templates()

    # then the payments app (registered from its AppConfig) supplies each one, and intake forms
    # (above transactions) adds the patient's submissions below the appointments
    assert templates == {
        "hub_row_actions": ["transactions/patient_panels/_hub_row_actions.html"],
        "profile_actions": ["transactions/patient_panels/_profile_actions.html"],
        "balance_actions": ["transactions/patient_panels/_balance_actions.html"],
        "before_appointments": ["transactions/patient_panels/_saved_cards.html"],
        "appointment_actions": ["transactions/patient_panels/_appointment_actions.html"],
        "after_appointments": [
            "transactions/patient_panels/_requests_and_transactions.html",
            "transactions/patient_panels/_payment_plans.html",
            "intake_forms/_patient_forms.html",
        ],
    }
