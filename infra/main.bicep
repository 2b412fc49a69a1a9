// pixelpipe on Azure: a Python 3.11 Function App (v2 programming model, Durable Functions) on a
// Flex Consumption plan, deployed with `azd up`. See docs/deployment.md.
//
// Layout follows Microsoft's Flex Consumption azd quickstarts (functions-quickstart-python-http-azd,
// durable-functions-quickstart-python-azd, functions-quickstart-python-azd-eventgrid-blob):
// subscription scope, a user-assigned identity, identity-based AzureWebJobsStorage, storage
// without shared keys, least-privilege roles in app/rbac.bicep. The modules use plain resources
// rather than AVM registry modules so that every property is visible to the offline checks
// (tests/unit/infra: pycep parse + semantic checks; checkov), which cannot fetch br/public.

targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; used to derive a unique suffix for every resource name.')
param environmentName string

@minLength(1)
@description('Region for every resource; it must offer Flex Consumption (az functionapp list-flexconsumption-locations).')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Resource group name; empty: rg-<environmentName>.')
param resourceGroupName string = ''

@description('Object id of the user or pipeline running azd (azd fills AZURE_PRINCIPAL_ID). Gets read access to the vault so azd keeps the webhook key stable; empty skips it.')
param principalId string = ''

@description('Also give the deployer what `python -m shared.security.rotation` needs (Key Vault Secrets Officer + Storage Blob Data Owner).')
param deployerCanRotateKeys bool = false

// -- Authentication (Entra ID) ------------------------------------------------------------------

@description('Tenant whose Entra ID issues the API\'s access tokens; empty: the deployment\'s tenant.')
param authTenantId string = ''

@minLength(1)
@description('Comma-separated accepted token audiences: the API app registration\'s application id URI and/or client id, e.g. api://<api-client-id>,<api-client-id>.')
param authAudiences string

@description('Delegated scope (scp) or app role (roles) a token must carry.')
param authPermission string = 'Images.Process'

// -- Secrets -----------------------------------------------------------------------------------

@secure()
@description('Webhook signing key (X-Pixelpipe-Signature HMAC). azd passes the vault\'s current value, or a new random one on the first run; a bare deployment without it generates a new GUID, which replaces the key.')
param webhookSigningKey string = newGuid()

@description('Name of the Key Vault secret holding the webhook signing key.')
param webhookSecretName string = 'webhook-signing-key'

@description('Name of the Key Vault secret holding the blob key-encryption key (created by the app).')
param kekSecretName string = 'blob-kek'

@description('True: the app identity may create key versions (KEK creation and rotation in the app). False: read-only, keys managed out of band.')
param appManagesKeyVersions bool = true

@allowed(['Enabled', 'Disabled'])
@description('Key Vault public network access. Disabled needs a private endpoint and VNet integration, which this template does not create.')
param keyVaultPublicNetworkAccess string = 'Enabled'

// -- Scale -------------------------------------------------------------------------------------

@allowed([512, 2048, 4096])
@description('Flex Consumption instance memory (MB): 2048 is 1 vCPU, 4096 is 2 vCPU.')
param instanceMemoryMB int = 2048

@minValue(1)
@maxValue(1000)
@description('Most instances the app scales out to (the cost ceiling of a burst).')
param maximumInstanceCount int = 100

// -- Data retention ----------------------------------------------------------------------------

@minValue(1)
@description('Days before outputs (results/, outbox/) are deleted by the lifecycle policy.')
param resultsRetentionDays int = 7

@minValue(1)
@description('Days before refused blob drops (quarantine/) are deleted by the lifecycle policy.')
param quarantineRetentionDays int = 30

@minValue(30)
@maxValue(730)
param logRetentionInDays int = 30

// -- Telemetry ---------------------------------------------------------------------------------

@description('Let the Python worker configure the Azure Monitor exporter itself (PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY). Off while shared/telemetry.py configures it: both would export twice.')
param enablePythonWorkerTelemetry bool = false

@description('Extra app settings, e.g. {"PIXELPIPE_JOB_DEADLINE_SECONDS": "900"}. They can override PIXELPIPE_IMAGING_THREADS but not the security settings below.')
param additionalAppSettings object = {}

// -- Names -------------------------------------------------------------------------------------

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
  application: 'pixelpipe'
}
var functionAppName = 'func-api-${resourceToken}'
var deploymentContainerName = 'app-package-${take(functionAppName, 32)}-${take(toLower(uniqueString(functionAppName, resourceToken)), 7)}'
var inboxContainerName = 'inbox'
// The Event Grid blob trigger on `inbox` (shared/functions/blobs.py); its webhook is
// /runtime/webhooks/blobs?functionName=Host.Functions.<name>.
var blobTriggerFunctionName = 'ingest'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: empty(resourceGroupName) ? 'rg-${environmentName}' : resourceGroupName
  location: location
  tags: tags
}

module identity 'app/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-api-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
    resultsRetentionDays: resultsRetentionDays
    quarantineRetentionDays: quarantineRetentionDays
  }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
    retentionInDays: logRetentionInDays
  }
}

module keyVault 'app/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: 'kv-${resourceToken}'
    location: location
    tags: tags
    publicNetworkAccess: keyVaultPublicNetworkAccess
    webhookSecretName: webhookSecretName
    webhookSigningKey: webhookSigningKey
  }
}

module eventGrid 'app/eventgrid.bicep' = {
  name: 'eventgrid'
  scope: rg
  params: {
    name: 'evgt-${resourceToken}'
    location: location
    tags: tags
    storageAccountName: storage.outputs.name
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    appPrincipalId: identity.outputs.principalId
    appManagesKeyVersions: appManagesKeyVersions
    deployerPrincipalId: principalId
    deployerCanRotateKeys: deployerCanRotateKeys
  }
}

// -- App settings ------------------------------------------------------------------------------
// Every PIXELPIPE_* name below is declared in shared/config.py (tests/unit/infra checks it).
// Settings left at their config.py defaults are not repeated here.

var authTenant = empty(authTenantId) ? tenant().tenantId : authTenantId
// Public-cloud Entra ID endpoints (the v1 issuer, sts.windows.net, has no environment() twin);
// sovereign clouds need other hosts here.
#disable-next-line no-hardcoded-env-urls
var entraLogin = 'https://login.microsoftonline.com/${authTenant}'

// One imaging thread per vCPU of the instance size (os.cpu_count() inside the sandbox may
// report the host's cores, not the instance's share).
var imagingThreads = (instanceMemoryMB >= 4096) ? 2 : 1

var tunableSettings = {
  PIXELPIPE_IMAGING_THREADS: string(imagingThreads)
}

var requiredSettings = {
  // Entra ID access tokens: keys, issuers (v2 and v1 token formats), audience, tenant.
  PIXELPIPE_AUTH_JWKS_URL: '${entraLogin}/discovery/v2.0/keys'
  PIXELPIPE_AUTH_ISSUERS: '${entraLogin}/v2.0,https://sts.windows.net/${authTenant}/'
  PIXELPIPE_AUTH_AUDIENCES: authAudiences
  PIXELPIPE_AUTH_TENANTS: authTenant
  PIXELPIPE_AUTH_PERMISSION: authPermission
  // Webhooks: public https targets only; the signing key is read from the vault through the
  // app's secret provider (the identity), by name: never a value in this template or in git.
  PIXELPIPE_WEBHOOK_ALLOW_PRIVATE: 'false'
  PIXELPIPE_WEBHOOK_SECRET_NAME: webhookSecretName
  // Rotating secrets (the blob key-encryption key) come from Key Vault through the identity.
  PIXELPIPE_SECRETS_PROVIDER: 'keyvault'
  PIXELPIPE_KEY_VAULT_URL: keyVault.outputs.uri
  PIXELPIPE_BLOB_KEK_NAME: kekSecretName
  // azure-identity: DefaultAzureCredential picks the user-assigned identity and nothing else.
  AZURE_CLIENT_ID: identity.outputs.clientId
  AZURE_TOKEN_CREDENTIALS: 'ManagedIdentityCredential'
  PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY: enablePythonWorkerTelemetry ? 'true' : 'false'
}

module api 'app/api.bicep' = {
  name: 'api'
  scope: rg
  params: {
    name: functionAppName
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: deploymentContainerName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    appSettings: union(tunableSettings, additionalAppSettings, requiredSettings)
  }
  // The host starts as soon as the site exists: let it find its storage and vault roles.
  dependsOn: [
    rbac
  ]
}

// -- Outputs (azd stores them in .azure/<env>/.env; the hooks read them) ------------------------

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = api.outputs.name
output AZURE_FUNCTION_APP_HOSTNAME string = api.outputs.defaultHostName
output SERVICE_API_NAME string = api.outputs.name
output SERVICE_API_URI string = 'https://${api.outputs.defaultHostName}'
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_STORAGE_BLOB_ENDPOINT string = storage.outputs.blobEndpoint
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_KEY_VAULT_ENDPOINT string = keyVault.outputs.uri
output AZURE_KEY_VAULT_WEBHOOK_KEY_NAME string = webhookSecretName
output AZURE_USER_ASSIGNED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output APPLICATIONINSIGHTS_CONNECTION_STRING string = monitoring.outputs.connectionString
output AZURE_EVENTGRID_SYSTEM_TOPIC_NAME string = eventGrid.outputs.name
output BLOB_TRIGGER_FUNCTION_NAME string = blobTriggerFunctionName
output BLOB_TRIGGER_SUBJECT_PREFIX string = '/blobServices/default/containers/${inboxContainerName}/'
