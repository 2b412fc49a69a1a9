// The Function App's user-assigned managed identity. Everything the app reaches (storage, Key
// Vault, Application Insights) trusts this identity through the roles in rbac.bicep.

param name string
param location string
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
