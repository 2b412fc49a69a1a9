// Key Vault for pixelpipe's secrets: the webhook signing key (read by the platform through a Key
// Vault reference in the app settings) and the blob key-encryption key (`blob-kek`, created and
// rotated by the app itself through azure-keyvault-secrets; see shared/security/kek.py). Access
// is RBAC only (no access policies); soft delete and purge protection keep a deleted vault, and
// every key version the encrypted blobs name, recoverable.

@description('Vault name (3-24 letters, digits and dashes, globally unique).')
@minLength(3)
@maxLength(24)
param name string

param location string
param tags object = {}

@description('Enabled: reachable from the internet (still RBAC-only). Disabled: only through a private endpoint, which this template does not create; the Flex app then needs VNet integration.')
@allowed(['Enabled', 'Disabled'])
param publicNetworkAccess string = 'Enabled'

@description('Name of the secret that holds the webhook signing key.')
param webhookSecretName string = 'webhook-signing-key'

@secure()
@description('Value of the webhook signing key. Every deployment writes it as the newest version: pass the current value (azd does, see main.parameters.json) to keep it.')
param webhookSigningKey string

@minValue(7)
@maxValue(90)
param softDeleteRetentionInDays int = 90

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionInDays
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: publicNetworkAccess
    networkAcls: {
      defaultAction: (publicNetworkAccess == 'Enabled') ? 'Allow' : 'Deny'
      bypass: 'AzureServices'
    }
  }
}

resource webhookSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: webhookSecretName
  properties: {
    value: webhookSigningKey
    contentType: 'text/plain'
    attributes: {
      enabled: true
    }
  }
}

output name string = vault.name
output id string = vault.id
output uri string = vault.properties.vaultUri
// Versionless: the Key Vault reference follows the newest version of the secret.
output webhookSecretUri string = webhookSecret.properties.secretUri
