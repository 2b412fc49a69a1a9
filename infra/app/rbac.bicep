// Role assignments: least privilege for the Function App's managed identity, plus optional
// data-plane access for the person (or pipeline) running azd. Names are guid(scope, principal,
// role), so re-deploying is idempotent.
//
// What the app identity needs, and why:
// - Storage Blob Data Owner (storage account): the Functions host's own blobs (AzureWebJobsStorage,
//   Durable task hub leases, Flex deployment package), the app's containers, and user-delegation
//   SAS (generateUserDelegationKey). Owner rather than Contributor because it is the role the
//   Functions documentation requires for identity-based AzureWebJobsStorage.
// - Storage Queue Data Contributor: the app's queues (jobs, ops, ops-poison) and the Durable
//   Functions control/work-item queues.
// - Storage Table Data Contributor: the app's tables (jobs, jobindex) and the Durable Functions
//   history/instances tables.
// - Key Vault Secrets Officer (vault), by default: the app itself creates the first version of
//   the blob key-encryption key at start-up (KeyRing.ensure in shared/security/kek.py) and new
//   versions when keys rotate (shared/security/rotation.py); reading the webhook key through the
//   Key Vault reference needs only "get", which Officer includes. The vault holds nothing but
//   this app's secrets. With appManagesKeyVersions = false the identity gets Key Vault Secrets
//   User (read only) instead, and an operator must create and rotate `blob-kek` out of band.
// - Monitoring Metrics Publisher (Application Insights): Entra-authenticated telemetry ingestion
//   (local auth is disabled on the component).

param storageAccountName string
param keyVaultName string
param applicationInsightsName string

@description('Principal (object) id of the Function App\'s user-assigned identity.')
param appPrincipalId string

@description('True: the app identity may create key versions (Key Vault Secrets Officer). False: read only (Key Vault Secrets User).')
param appManagesKeyVersions bool = true

@description('Object id of the user or pipeline running azd; empty skips its roles.')
param deployerPrincipalId string = ''

@description('Also let the deployer run `python -m shared.security.rotation` from their machine (Key Vault Secrets Officer + Storage Blob Data Owner).')
param deployerCanRotateKeys bool = false

// Built-in role definition ids (they are the same in every tenant).
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

var appKeyVaultRole = appManagesKeyVersions ? roles.keyVaultSecretsOfficer : roles.keyVaultSecretsUser
var deployerKeyVaultRole = deployerCanRotateKeys ? roles.keyVaultSecretsOfficer : roles.keyVaultSecretsUser
var hasDeployer = !empty(deployerPrincipalId)

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

// -- the Function App's identity ------------------------------------------------------------

resource appBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appPrincipalId, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appQueueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appPrincipalId, roles.storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appTableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appPrincipalId, roles.storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appKeyVaultSecrets 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, appPrincipalId, appKeyVaultRole)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', appKeyVaultRole)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource appMetricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, appPrincipalId, roles.monitoringMetricsPublisher)
  scope: applicationInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// -- the deployer (optional) ------------------------------------------------------------------
// Read access to the vault lets azd read the webhook signing key back on the next provision
// (`secretOrRandomPassword` in main.parameters.json), so the key stays stable. principalType is
// left out: the deployer may be a user or a service principal.

resource deployerKeyVaultSecrets 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (hasDeployer) {
  name: guid(vault.id, deployerPrincipalId, deployerKeyVaultRole)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', deployerKeyVaultRole)
    principalId: deployerPrincipalId
  }
}

resource deployerBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (hasDeployer && deployerCanRotateKeys) {
  name: guid(storage.id, deployerPrincipalId, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: deployerPrincipalId
  }
}
