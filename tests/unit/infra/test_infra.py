"""Offline checks of the deployment (infra/, azure.yaml): no Bicep compiler, no Azure.

Every .bicep file must parse (pycep-parser, the parser checkov uses), and the parsed templates
must provide what the app depends on: identity-based storage without shared keys, the containers,
queues and tables of shared/storage/clients.py, least-privilege roles with the right built-in
ids, every app setting the app needs (and only settings shared/config.py declares), the webhook
key as a Key Vault reference, the Event Grid wiring of the blob trigger, and no secret literal.

What this cannot check: that Azure accepts the templates (no `bicep build`, no what-if); see
docs/deployment.md. The first run on a machine spends ~12 s building pycep's grammar tables
(lark caches them in the temp directory); after that the checks take about a second.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from shared.config import Settings, describe_settings
from shared.storage.clients import CONTAINERS, INBOX, OUTBOX, QUARANTINE, QUEUES, RESULTS, TABLES
from tests.unit.infra.bicep import Bicep, Choice, Param, Unknown, parse_file

ROOT = Path(__file__).resolve().parents[3]
INFRA = ROOT / "infra"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))
SETUP_HINT = "run `make setup` (requirements-dev.txt pins pycep-parser and PyYAML)"

# Azure built-in role definition ids (identical in every tenant; `az role definition list
# --name "<role>" --query [].name`). Cross-checked against the AVM modules' role tables.
ROLE_IDS = {
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "Key Vault Secrets User": "4633458b-17de-408a-b874-0445c86b69e6",
    "Key Vault Secrets Officer": "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
}

# Settings (shared/config.py names) that only the deployment can provide: storage identity,
# Entra ID token validation, webhook hardening and key, Key Vault as the secret provider.
INFRA_MUST_SET = {
    "AzureWebJobsStorage__accountName",
    "AzureWebJobsStorage__blobServiceUri",
    "AzureWebJobsStorage__queueServiceUri",
    "AzureWebJobsStorage__tableServiceUri",
    "AzureWebJobsStorage__clientId",
    "PIXELPIPE_AUTH_JWKS_URL",
    "PIXELPIPE_AUTH_ISSUERS",
    "PIXELPIPE_AUTH_AUDIENCES",
    "PIXELPIPE_AUTH_TENANTS",
    "PIXELPIPE_AUTH_PERMISSION",
    "PIXELPIPE_WEBHOOK_ALLOW_PRIVATE",
    "PIXELPIPE_WEBHOOK_SECRET_NAME",
    "PIXELPIPE_SECRETS_PROVIDER",
    "PIXELPIPE_KEY_VAULT_URL",
    "PIXELPIPE_BLOB_KEK_NAME",
}

# App settings read by the Functions host, the Python worker or the Azure SDKs, not by
# shared/config.py. Anything else the templates set must be declared in config.py.
NOT_IN_CONFIG = {
    "AzureWebJobsStorage__credential",  # host: identity-based connection
    "APPLICATIONINSIGHTS_CONNECTION_STRING",  # host + shared/telemetry.py
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",  # host + exporter: Entra ID ingestion
    "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY",  # Python worker
    "AZURE_CLIENT_ID",  # azure-identity: which managed identity
    "AZURE_TOKEN_CREDENTIALS",  # azure-identity: managed identity only
}

# Settings Flex Consumption rejects or ignores (the platform sets them from functionAppConfig),
# and the connection-string form of AzureWebJobsStorage (shared keys are disabled).
FORBIDDEN_SETTINGS = {
    "AzureWebJobsStorage",
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "FUNCTIONS_WORKER_RUNTIME_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTSHARE",
    "SCM_DO_BUILD_DURING_DEPLOYMENT",
    "ENABLE_ORYX_BUILD",
    "FUNCTIONS_WORKER_PROCESS_COUNT",
    "WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT",  # maximumInstanceCount replaces it
}

KEY_VAULT_REFERENCE = re.compile(r"^@Microsoft\.KeyVault\((SecretUri|VaultName)=[^)]+\)$")

# Text that must never appear in deployment files: keys, SAS signatures, connection strings
# with credentials, private keys, hard-coded passwords, shared-key calls.
SECRET_PATTERNS = [
    re.compile(r"AccountKey\s*=", re.IGNORECASE),
    re.compile(r"SharedAccess(Key|Signature)\s*=", re.IGNORECASE),
    re.compile(r"[?&]sig=[A-Za-z0-9%]", re.IGNORECASE),
    re.compile(r"InstrumentationKey\s*=\s*[0-9a-f]{8}-", re.IGNORECASE),
    re.compile(r"DefaultEndpointsProtocol=", re.IGNORECASE),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"\blist(Keys|AccountSas|ServiceSas|Secrets)\s*\(", re.IGNORECASE),
    re.compile(r"(password|passwd|secret|apikey|api_key)\s*[:=]\s*'[^'$@<{]", re.IGNORECASE),
    re.compile(r"Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq"),  # Azurite's key
]


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def parser() -> Any:
    try:
        from pycep import BicepParser
    except ImportError:
        pytest.fail(f"pycep-parser is not installed: {SETUP_HINT}")
    return BicepParser()


@pytest.fixture(scope="session")
def templates(parser: Any) -> dict[str, Bicep]:
    return {str(path.relative_to(INFRA)): parse_file(parser, path) for path in BICEP_FILES}


@pytest.fixture(scope="session")
def main(templates: dict[str, Bicep]) -> Bicep:
    return templates["main.bicep"]


def module_template(templates: dict[str, Bicep], main: Bicep, module: str) -> Bicep:
    return templates[main.modules[module]["detail"]["path"]]


@pytest.fixture(scope="session")
def api(templates: dict[str, Bicep], main: Bicep) -> Bicep:
    return module_template(templates, main, "api")


@pytest.fixture(scope="session")
def storage(templates: dict[str, Bicep], main: Bicep) -> Bicep:
    return module_template(templates, main, "storage")


@pytest.fixture(scope="session")
def rbac(templates: dict[str, Bicep], main: Bicep) -> Bicep:
    return module_template(templates, main, "rbac")


@pytest.fixture(scope="session")
def keyvault(templates: dict[str, Bicep], main: Bicep) -> Bicep:
    return module_template(templates, main, "keyVault")


@pytest.fixture(scope="session")
def app_settings(main: Bicep, api: Bicep) -> dict[str, Any]:
    """Every app setting of the Function App: main.bicep's appSettings + api.bicep's own."""
    from_main = main.value(main.modules["api"]["config"]["params"]["appSettings"])
    (config,) = api.resources_of_type("Microsoft.Web/sites/config").values()
    assert config["config"]["name"] == "appsettings"
    from_api = api.value(config["config"]["properties"])
    assert isinstance(from_main, dict) and isinstance(from_api, dict)
    overlap = set(from_main) & set(from_api)
    assert not overlap, f"set in both main.bicep and api.bicep: {sorted(overlap)}"
    return {**from_main, **from_api}


@pytest.fixture(scope="session")
def azure_yaml() -> dict[str, Any]:
    try:
        import yaml
    except ImportError:
        pytest.fail(f"PyYAML is not installed: {SETUP_HINT}")
    return yaml.safe_load((ROOT / "azure.yaml").read_text())


def config_envs() -> set[str]:
    return {entry["env"] for entry in describe_settings()}


# -- every file parses; modules and parameters fit together --------------------------------------


def test_there_are_bicep_files() -> None:
    assert (INFRA / "main.bicep") in BICEP_FILES
    assert len(BICEP_FILES) >= 2


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: str(p.relative_to(INFRA)))
def test_every_bicep_file_parses(parser: Any, path: Path) -> None:
    parsed = parser.parse(file_path=path)
    assert parsed.get("resources") or parsed.get("modules"), f"{path.name} declares nothing"


def test_main_deploys_at_subscription_scope(main: Bicep) -> None:
    assert main.raw["globals"]["scope"]["value"] == "subscription"


def test_modules_exist_and_get_exactly_their_parameters(
    templates: dict[str, Bicep], main: Bicep
) -> None:
    for name, module in main.modules.items():
        assert module["type"] == "local", f"module {name}: only local modules (offline checks)"
        path = module["detail"]["path"]
        assert path in templates, f"module {name}: {path} does not exist"
        target = templates[path]
        passed = set(module["config"].get("params", {}))
        unknown = passed - set(target.params)
        assert not unknown, f"module {name} passes parameters {path} lacks: {sorted(unknown)}"
        required = {p for p, decl in target.params.items() if decl.get("default") is None}
        missing = required - passed
        assert not missing, f"module {name} misses required parameters of {path}: {missing}"


def test_module_outputs_used_by_main_exist(templates: dict[str, Bicep], main: Bicep) -> None:
    for module, output in main.module_output_references():
        assert module in main.modules, f"{module}.outputs.{output}: no module {module}"
        target = module_template(templates, main, module)
        assert output in target.outputs, f"{module}.outputs.{output}: no such output"


def test_parameters_file_matches_main(main: Bicep) -> None:
    values = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    unknown = set(values) - set(main.params)
    assert not unknown, f"main.parameters.json sets unknown parameters: {sorted(unknown)}"
    required = {p for p, decl in main.params.items() if decl.get("default") is None}
    assert required <= set(values), f"not in main.parameters.json: {required - set(values)}"
    # The webhook key is read back from the vault by azd on every provision, so it stays put.
    key = values["webhookSigningKey"]["value"]
    assert key == (
        "$(secretOrRandomPassword ${AZURE_KEY_VAULT_NAME} "
        f"{main.param_default('webhookSecretName')})"
    )
    assert "AZURE_KEY_VAULT_NAME" in main.outputs


def test_azd_variables_used_by_parameters_are_documented(main: Bicep) -> None:
    text = (INFRA / "main.parameters.json").read_text()
    used = set(re.findall(r"\$\{(\w+)\}", text))
    azd_provided = {"AZURE_ENV_NAME", "AZURE_LOCATION", "AZURE_PRINCIPAL_ID"}
    outputs = set(main.outputs)
    docs = (ROOT / "docs" / "deployment.md").read_text()
    for name in used - azd_provided - outputs:
        assert f"`{name}`" in docs, f"docs/deployment.md should explain azd variable {name}"


def test_outputs_azd_and_the_hooks_need(main: Bicep) -> None:
    needed = {
        "AZURE_LOCATION",
        "AZURE_TENANT_ID",
        "AZURE_RESOURCE_GROUP",
        "AZURE_FUNCTION_APP_NAME",
        "AZURE_FUNCTION_APP_HOSTNAME",
        "AZURE_STORAGE_ACCOUNT_NAME",
        "AZURE_KEY_VAULT_NAME",
        "AZURE_KEY_VAULT_ENDPOINT",
        "AZURE_EVENTGRID_SYSTEM_TOPIC_NAME",
        "BLOB_TRIGGER_FUNCTION_NAME",
        "BLOB_TRIGGER_SUBJECT_PREFIX",
    }
    assert needed <= set(main.outputs), sorted(needed - set(main.outputs))
    for name, output in main.outputs.items():
        text = json.dumps(output["value"])
        assert "webhookSigningKey" not in text, f"output {name} exposes the webhook key"


# -- storage ------------------------------------------------------------------------------------


def test_storage_account_is_locked_down(storage: Bicep) -> None:
    (account,) = storage.resources_of_type("Microsoft.Storage/storageAccounts").values()
    props = account["config"]["properties"]
    assert props["allowSharedKeyAccess"] is False
    assert props["allowBlobPublicAccess"] is False
    assert props["supportsHttpsTrafficOnly"] is True
    assert props["minimumTlsVersion"] == "TLS1_2"
    assert props["defaultToOAuthAuthentication"] is True


def _loop_names(bicep: Bicep, type_: str) -> list[Any]:
    (name,) = bicep.resources_of_type(type_)
    return bicep.loop_source(name)


def test_every_container_queue_and_table_of_the_app_is_created(main: Bicep, storage: Bicep) -> None:
    containers = _loop_names(storage, "Microsoft.Storage/storageAccounts/blobServices/containers")
    assert set(CONTAINERS) <= set(containers), f"missing: {set(CONTAINERS) - set(containers)}"
    queues = _loop_names(storage, "Microsoft.Storage/storageAccounts/queueServices/queues")
    assert set(QUEUES) <= set(queues), f"missing: {set(QUEUES) - set(queues)}"
    tables = _loop_names(storage, "Microsoft.Storage/storageAccounts/tableServices/tables")
    assert set(TABLES) <= set(tables), f"missing: {set(TABLES) - set(tables)}"
    # The Flex deployment container is created too, and it is the one the app deploys from.
    assert Param("deploymentContainerName") in containers
    for module in ("storage", "api"):
        passed = main.modules[module]["config"]["params"]["deploymentContainerName"]
        assert passed == "deploymentContainerName", module
    assert "deploymentContainerName" in main.variables


def test_lifecycle_rules_expire_outputs_and_quarantine(main: Bicep, storage: Bicep) -> None:
    (policy,) = storage.resources_of_type(
        "Microsoft.Storage/storageAccounts/managementPolicies"
    ).values()
    rules = storage.value(policy["config"]["properties"]["policy"]["rules"])
    expiry = {}
    for rule in rules:
        assert rule["enabled"] is True and rule["type"] == "Lifecycle"
        days = rule["definition"]["actions"]["baseBlob"]["delete"][
            "daysAfterModificationGreaterThan"
        ]
        for prefix in rule["definition"]["filters"]["prefixMatch"]:
            expiry[prefix] = days
    assert expiry == {
        f"{RESULTS}/": Param("resultsRetentionDays"),
        f"{OUTBOX}/": Param("resultsRetentionDays"),
        f"{QUARANTINE}/": Param("quarantineRetentionDays"),
    }
    for name in ("resultsRetentionDays", "quarantineRetentionDays"):
        assert main.modules["storage"]["config"]["params"][name] == name
        assert isinstance(main.param_default(name), int)


# -- identity and roles -------------------------------------------------------------------------


def test_role_definition_ids_are_the_built_in_ones(rbac: Bicep) -> None:
    roles = rbac.value("roles")
    by_name = {
        "storageBlobDataOwner": "Storage Blob Data Owner",
        "storageQueueDataContributor": "Storage Queue Data Contributor",
        "storageTableDataContributor": "Storage Table Data Contributor",
        "keyVaultSecretsUser": "Key Vault Secrets User",
        "keyVaultSecretsOfficer": "Key Vault Secrets Officer",
        "monitoringMetricsPublisher": "Monitoring Metrics Publisher",
    }
    assert roles == {key: ROLE_IDS[name] for key, name in by_name.items()}


def _role_ids(value: Any) -> set[str]:
    assert isinstance(value, dict) and "subscriptionResourceId" in value, value
    resource_type, role = value["subscriptionResourceId"]
    assert resource_type == "Microsoft.Authorization/roleDefinitions"
    return set(role.options) if isinstance(role, Choice) else {role}


def test_role_assignments_are_least_privilege(rbac: Bicep) -> None:
    scopes = {name: res["type"] for name, res in rbac.resources.items() if res.get("existing")}
    granted: dict[str, set[tuple[str, frozenset[str]]]] = {}
    for name in rbac.resources_of_type("Microsoft.Authorization/roleAssignments"):
        body = rbac.config(name)
        assert body["name"]["function"]["type"] == "guid", f"{name}: name must be guid(...)"
        guid_args = json.dumps(body["name"]["function"]["parameters"])
        props = body["properties"]
        principal = rbac.value(props["principalId"])
        assert isinstance(principal, Param), name
        assert principal.name in guid_args, f"{name}: guid() must include the principal"
        role_ids = _role_ids(rbac.value(props["roleDefinitionId"]))
        assert role_ids <= set(ROLE_IDS.values()), f"{name}: unexpected role {role_ids}"
        scope_type = scopes[body["scope"]]
        granted.setdefault(principal.name, set()).add((scope_type, frozenset(role_ids)))
        if principal.name == "appPrincipalId":
            assert props["principalType"] == "ServicePrincipal", name

    storage_type = "Microsoft.Storage/storageAccounts"
    assert granted["appPrincipalId"] == {
        (storage_type, frozenset({ROLE_IDS["Storage Blob Data Owner"]})),
        (storage_type, frozenset({ROLE_IDS["Storage Queue Data Contributor"]})),
        (storage_type, frozenset({ROLE_IDS["Storage Table Data Contributor"]})),
        (
            "Microsoft.KeyVault/vaults",
            frozenset({ROLE_IDS["Key Vault Secrets Officer"], ROLE_IDS["Key Vault Secrets User"]}),
        ),
        ("Microsoft.Insights/components", frozenset({ROLE_IDS["Monitoring Metrics Publisher"]})),
    }
    # The deployer gets nothing unless asked for, and never more than the app itself.
    for name in rbac.resources_of_type("Microsoft.Authorization/roleAssignments"):
        if rbac.value(rbac.config(name)["properties"]["principalId"]) == Param(
            "deployerPrincipalId"
        ):
            assert rbac.condition(name) is not None, f"{name} must be conditional"


def test_rbac_gets_the_app_identity(main: Bicep) -> None:
    params = main.modules["rbac"]["config"]["params"]
    assert main.value(params["appPrincipalId"]) == Unknown("identity.outputs.principalId")
    assert main.value(params["deployerPrincipalId"]) == Param("principalId")


# -- Key Vault ----------------------------------------------------------------------------------


def test_key_vault_is_rbac_only_with_purge_protection(keyvault: Bicep) -> None:
    (vault,) = keyvault.resources_of_type("Microsoft.KeyVault/vaults").values()
    props = vault["config"]["properties"]
    assert props["enableRbacAuthorization"] is True
    assert props["enableSoftDelete"] is True
    assert props["enablePurgeProtection"] is True
    assert keyvault.value(props["publicNetworkAccess"]) == Param("publicNetworkAccess")
    assert "accessPolicies" not in props


def test_webhook_key_is_a_generated_secure_parameter_stored_in_the_vault(
    main: Bicep, keyvault: Bicep
) -> None:
    (secret,) = keyvault.resources_of_type("Microsoft.KeyVault/vaults/secrets").values()
    value = keyvault.value(secret["config"]["properties"]["value"])
    assert value == Param("webhookSigningKey")
    assert "secure" in keyvault.decorators("webhookSigningKey")
    assert "secure" in main.decorators("webhookSigningKey")
    assert main.param_default("webhookSigningKey") == {"function": {"type": "new_guid"}}
    assert main.modules["keyVault"]["config"]["params"]["webhookSigningKey"] == (
        "webhookSigningKey"
    )
    assert keyvault.outputs["webhookSecretUri"]["value"] == {
        "operator": {
            "type": "property_accessor",
            "operands": {
                "operand_1": "webhookSecret",
                "operand_2": {
                    "operator": {
                        "type": "property_accessor",
                        "operands": {"operand_1": "properties", "operand_2": "secretUri"},
                    }
                },
            },
        }
    }


def test_secure_parameters_have_no_literal_default(templates: dict[str, Bicep]) -> None:
    for path, bicep in templates.items():
        for name in bicep.params:
            if "secure" in bicep.decorators(name):
                default = bicep.param_default(name)
                assert default in (None, {"function": {"type": "new_guid"}}), f"{path}: {name}"


# -- the Function App ---------------------------------------------------------------------------


def test_function_app_is_flex_consumption_python_311(api: Bicep) -> None:
    (plan,) = api.resources_of_type("Microsoft.Web/serverfarms").values()
    assert plan["config"]["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert plan["config"]["properties"]["reserved"] is True
    (site,) = api.resources_of_type("Microsoft.Web/sites").values()
    body = site["config"]
    assert body["kind"] == "functionapp,linux"
    config = body["properties"]["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["tool"]["ruff"]["target-version"] == "py311"
    scale = config["scaleAndConcurrency"]
    assert api.value(scale["instanceMemoryMB"]) == Param("instanceMemoryMB")
    assert api.value(scale["maximumInstanceCount"]) == Param("maximumInstanceCount")


def test_scale_parameters_reach_the_app(main: Bicep) -> None:
    assert main.param_default("instanceMemoryMB") == 2048
    assert 2048 in main.decorators("instanceMemoryMB")["allowed"]
    assert isinstance(main.param_default("maximumInstanceCount"), int)
    params = main.modules["api"]["config"]["params"]
    assert params["instanceMemoryMB"] == "instanceMemoryMB"
    assert params["maximumInstanceCount"] == "maximumInstanceCount"


def test_function_app_uses_its_user_assigned_identity_everywhere(api: Bicep) -> None:
    (site,) = api.resources_of_type("Microsoft.Web/sites").values()
    body = site["config"]
    assert body["identity"]["type"] == "UserAssigned"
    assert list(body["identity"]["userAssignedIdentities"]) == ["'${identityId}'"]
    props = body["properties"]
    assert props["httpsOnly"] is True
    assert api.value(props["keyVaultReferenceIdentity"]) == Param("identityId")
    storage = props["functionAppConfig"]["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert api.value(storage["value"]).endswith("<deploymentContainerName>")
    assert storage["authentication"]["type"] == "UserAssignedIdentity"
    assert api.value(storage["authentication"]["userAssignedIdentityResourceId"]) == Param(
        "identityId"
    )


def test_app_settings_include_what_only_the_deployment_can_set(app_settings: dict) -> None:
    missing = INFRA_MUST_SET - set(app_settings)
    assert not missing, f"the Function App lacks settings: {sorted(missing)}"
    declared = config_envs()
    assert declared >= INFRA_MUST_SET, f"not in shared/config.py: {INFRA_MUST_SET - declared}"


def test_every_app_setting_is_declared_in_config_or_known_to_the_platform(
    app_settings: dict,
) -> None:
    undeclared = set(app_settings) - config_envs()
    assert undeclared == NOT_IN_CONFIG, (
        f"settings neither in shared/config.py nor known platform settings: "
        f"{sorted(undeclared - NOT_IN_CONFIG)}; listed but no longer set: "
        f"{sorted(NOT_IN_CONFIG - undeclared)}"
    )
    forbidden = FORBIDDEN_SETTINGS & set(app_settings)
    assert not forbidden, f"not for Flex Consumption / keyless storage: {sorted(forbidden)}"


def test_pixelpipe_names_anywhere_in_infra_exist_in_config() -> None:
    """Catches typos in comments, scripts and parameter files too, not only in app settings."""
    declared = config_envs()
    for path in sorted(INFRA.rglob("*")):
        if path.is_file() and path.suffix in {".bicep", ".json", ".sh", ".ps1", ".yaml", ".md"}:
            for name in set(re.findall(r"\bPIXELPIPE_[A-Z0-9_]+\b", path.read_text())):
                if name in declared:
                    continue
                # Variables of the deployment scripts themselves, not app settings.
                assert name in {
                    "PIXELPIPE_WHEELHOUSE",
                    "PIXELPIPE_WHEEL_PLATFORMS",
                    "PIXELPIPE_WHEEL_IMAGE",
                    "PIXELPIPE_IN_BUILD_CONTAINER",
                    "PIXELPIPE_SIMD",
                    "PIXELPIPE_KEY_WAIT_ATTEMPTS",
                }, f"{path.relative_to(ROOT)}: {name} is not a setting in shared/config.py"


def test_identity_based_storage_settings(app_settings: dict) -> None:
    assert app_settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert app_settings["AzureWebJobsStorage__clientId"] == Param("identityClientId")
    for kind in ("blob", "queue", "table"):
        uri = app_settings[f"AzureWebJobsStorage__{kind}ServiceUri"]
        assert uri == Unknown(f"storage.properties.primaryEndpoints.{kind}")
    assert app_settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == (
        "ClientId=<identityClientId>;Authorization=AAD"
    )


def test_auth_settings_point_at_the_tenant(main: Bicep, app_settings: dict) -> None:
    tenant = "<authTenant>"
    assert app_settings["PIXELPIPE_AUTH_JWKS_URL"] == (
        f"https://login.microsoftonline.com/{tenant}/discovery/v2.0/keys"
    )
    assert app_settings["PIXELPIPE_AUTH_ISSUERS"] == (
        f"https://login.microsoftonline.com/{tenant}/v2.0,https://sts.windows.net/{tenant}/"
    )
    assert app_settings["PIXELPIPE_AUTH_TENANTS"] == Choice(
        (Unknown("tenant"), Param("authTenantId"))
    )
    assert app_settings["PIXELPIPE_AUTH_AUDIENCES"] == Param("authAudiences")
    assert app_settings["PIXELPIPE_AUTH_PERMISSION"] == Param("authPermission")
    assert main.param_default("authPermission") == "Images.Process"
    assert main.decorators("authAudiences").get("min_length") == 1


def test_webhook_secret_is_read_from_the_vault_by_name(app_settings: dict, main) -> None:
    # The app reads the signing key through its secret provider (Key Vault, with the
    # identity); the setting only names the vault's secret.
    assert app_settings["PIXELPIPE_WEBHOOK_SECRET_NAME"] == Param("webhookSecretName")
    assert main.modules["keyVault"]["config"]["params"]["webhookSecretName"] == (
        "webhookSecretName"
    )
    # Any setting that holds a secret (none today) must be a Key Vault reference.
    for entry in describe_settings():
        if entry["secret"] and entry["env"] in app_settings:
            assert KEY_VAULT_REFERENCE.match(str(app_settings[entry["env"]])), entry["env"]


def test_literal_settings_are_valid_for_the_app(app_settings: dict) -> None:
    """The settings the templates spell out parse with shared/config.py's own rules."""
    declared = config_envs()
    variants: list[dict[str, str]] = [{}]
    for name, value in app_settings.items():
        if name not in declared:
            continue
        options = value.options if isinstance(value, Choice) else (value,)
        texts = [o if isinstance(o, str) else "deployment-time-value" for o in options]
        variants = [{**v, name: t} for v in variants for t in texts]
    for env in variants:
        settings = Settings.from_env(env)
        assert settings.webhook_allow_private is False
        assert settings.secrets_provider == "keyvault"
        assert settings.imaging_threads >= 1


def test_scale_note_matches_host_json(api: Bicep) -> None:
    host = json.loads((ROOT / "host.json").read_text())
    queues = host["extensions"]["queues"]
    text = api.path.read_text()
    match = re.search(r"batchSize \+ newBatchThreshold = (\d+) \+ (\d+) = (\d+)", text)
    assert match, "api.bicep should explain per-instance queue concurrency"
    batch, threshold, total = map(int, match.groups())
    assert (batch, threshold) == (queues["batchSize"], queues["newBatchThreshold"]), (
        "host.json changed: update the scale note in infra/app/api.bicep"
    )
    assert total == batch + threshold


# -- Event Grid blob trigger --------------------------------------------------------------------


def event_grid_blob_triggers() -> dict[str, str]:
    """{function name: container} of every Event Grid blob trigger in shared/functions/."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "shared" / "functions").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            name, container, event_grid = node.name, None, False
            for deco in node.decorator_list:
                if not (isinstance(deco, ast.Call) and isinstance(deco.func, ast.Attribute)):
                    continue
                kwargs = {k.arg: k.value for k in deco.keywords}
                if deco.func.attr == "function_name" and deco.args:
                    arg = deco.args[0]
                    name = arg.value if isinstance(arg, ast.Constant) else ast.unparse(arg)
                if deco.func.attr == "blob_trigger":
                    source = kwargs.get("source")
                    event_grid = isinstance(source, ast.Attribute) and source.attr == "EVENT_GRID"
                    container = _path_container(kwargs.get("path"))
            if event_grid:
                found[name] = container or ""
    return found


def _path_container(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.Constant):
        return str(node.value).split("/", 1)[0]
    if isinstance(node, ast.JoinedStr) and node.values:
        first = node.values[0]
        if isinstance(first, ast.FormattedValue) and isinstance(first.value, ast.Name):
            return {"INBOX": INBOX}.get(first.value.id)
        if isinstance(first, ast.Constant):
            return str(first.value).split("/", 1)[0]
    return None


def test_event_grid_subscription_targets_the_inbox_trigger(main: Bicep) -> None:
    triggers = event_grid_blob_triggers()
    assert len(triggers) == 1, triggers
    ((function, container),) = triggers.items()
    assert container == INBOX
    assert main.value(main.outputs["BLOB_TRIGGER_FUNCTION_NAME"]["value"]) == function
    assert main.value(main.outputs["BLOB_TRIGGER_SUBJECT_PREFIX"]["value"]) == (
        f"/blobServices/default/containers/{INBOX}/"
    )


def test_system_topic_is_on_the_storage_account(templates: dict[str, Bicep], main: Bicep) -> None:
    eventgrid = module_template(templates, main, "eventGrid")
    (topic,) = eventgrid.resources_of_type("Microsoft.EventGrid/systemTopics").values()
    props = topic["config"]["properties"]
    assert props["topicType"] == "Microsoft.Storage.StorageAccounts"
    assert eventgrid.value(props["source"]) == Unknown("storage.id")
    assert eventgrid.resources["storage"]["type"] == "Microsoft.Storage/storageAccounts"
    assert main.value(main.modules["eventGrid"]["config"]["params"]["storageAccountName"]) == (
        Unknown("storage.outputs.name")
    )


@pytest.mark.parametrize("script", ["postdeploy.sh", "postdeploy.ps1"])
def test_postdeploy_hook_subscribes_blob_created_for_the_trigger(main: Bicep, script: str) -> None:
    text = (INFRA / "hooks" / script).read_text()
    # One command per line: join `\` (bash) and backtick (PowerShell) continuations.
    flat = re.sub(r"[ \t]+", " ", re.sub(r"\s*[`\\]\r?\n\s*", " ", text))
    for needle in (
        "systemKeys.blobs_extension",
        "/runtime/webhooks/blobs?functionName=Host.Functions.",
        "az eventgrid system-topic event-subscription create",
        "--endpoint-type webhook",
        "--included-event-types Microsoft.Storage.BlobCreated",
        "--subject-begins-with",
    ):
        assert needle in flat, f"{script}: {needle!r}"
    read = set(re.findall(r"\bneed (\w+)", text)) | set(re.findall(r"Get-Required '(\w+)'", text))
    assert {"BLOB_TRIGGER_FUNCTION_NAME", "BLOB_TRIGGER_SUBJECT_PREFIX"} <= read
    assert read <= set(main.outputs), f"{script} reads values main.bicep does not output"


def test_shell_scripts_are_valid_bash() -> None:
    bash = shutil.which("bash")
    assert bash, "bash is needed to check infra/**/*.sh"
    for path in sorted(INFRA.rglob("*.sh")):
        result = subprocess.run(
            [bash, "-n", str(path)], check=False, capture_output=True, text=True
        )
        assert result.returncode == 0, f"{path.relative_to(ROOT)}: {result.stderr}"


# -- azure.yaml ---------------------------------------------------------------------------------


def test_azure_yaml_deploys_the_app_as_service_api(azure_yaml: dict, api: Bicep) -> None:
    service = azure_yaml["services"]["api"]
    assert service["project"] == "."
    assert service["language"] == "python"
    assert service["host"] == "function"
    assert service["remoteBuild"] is False  # pillow-simd comes prebuilt (prepackage hook)
    assert azure_yaml["infra"] == {"provider": "bicep", "path": "infra", "module": "main"}
    (site,) = api.resources_of_type("Microsoft.Web/sites").values()
    assert api.value(site["config"]["tags"])["azd-service-name"] == "api"
    assert (ROOT / "requirements.txt").is_file() and (ROOT / "function_app.py").is_file()


def test_azure_yaml_hooks_exist(azure_yaml: dict) -> None:
    hooks = {
        ("postdeploy", "project"): azure_yaml["hooks"]["postdeploy"],
        ("prepackage", "api"): azure_yaml["services"]["api"]["hooks"]["prepackage"],
    }
    for (event, owner), hook in hooks.items():
        for platform, shell in (("posix", "sh"), ("windows", "pwsh")):
            entry = hook[platform]
            assert entry["shell"] == shell, (event, owner, platform)
            script = ROOT / entry["run"]
            assert script.is_file(), f"{event} ({owner}, {platform}): {entry['run']} is missing"
            if platform == "posix":
                assert script.stat().st_mode & 0o111, f"{entry['run']} is not executable"
                assert script.read_text().startswith("#!/usr/bin/env bash")


# -- no secrets ---------------------------------------------------------------------------------


def test_no_secret_literal_in_deployment_files() -> None:
    files = [p for p in INFRA.rglob("*") if p.is_file() and p.suffix != ".whl"]
    files.append(ROOT / "azure.yaml")
    for path in files:
        text = path.read_text()
        for pattern in SECRET_PATTERNS:
            match = pattern.search(text)
            assert not match, f"{path.relative_to(ROOT)}: looks like a secret: {match.group(0)!r}"
