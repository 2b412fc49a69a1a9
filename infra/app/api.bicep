// The Function App on a Flex Consumption (FC1) plan: Python 3.11, Linux, the user-assigned
// identity for everything (host storage, deployment package, Key Vault references, telemetry).

param name string
param planName string
param location string
param tags object = {}

@description('Resource id of the user-assigned managed identity.')
param identityId string

@description('Client id of the user-assigned managed identity.')
param identityClientId string

param storageAccountName string
param deploymentContainerName string
param applicationInsightsName string

@description('Memory of one instance. Flex gives 512 MB about 0.25 vCPU, 2048 MB 1 vCPU, 4096 MB 2 vCPU.')
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

@description('Upper bound on instances the app scales out to.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('The app\'s own settings (PIXELPIPE_*, identity hints), built in main.bicep.')
param appSettings object

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

// The Functions host's own settings. Identity-based AzureWebJobsStorage: no connection string,
// no account key; the blob, queue and table URIs are all given because Durable Functions uses
// all three. Telemetry goes in with the identity (Entra auth), local auth being disabled.
var hostSettings = {
  AzureWebJobsStorage__accountName: storage.name
  AzureWebJobsStorage__blobServiceUri: storage.properties.primaryEndpoints.blob
  AzureWebJobsStorage__queueServiceUri: storage.properties.primaryEndpoints.queue
  AzureWebJobsStorage__tableServiceUri: storage.properties.primaryEndpoints.table
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
}

// Scale. The queue triggers (dispatch on `jobs`, worker on `ops`, worker_poison on `ops-poison`)
// each scale on their own in Flex Consumption (per-function scaling), by target-based scaling:
// desired instances = queue length / target executions per instance, and for Storage queues
// that target is host.json `extensions.queues.batchSize` (2). On one instance a queue function
// runs at most batchSize + newBatchThreshold = 2 + 1 = 3 messages at once (a new batch of 2 is
// fetched when only 1 is still running): that is the per-instance concurrency of image work.
// Three operations of ~85-160 MB peak each fit a 2048 MB instance (1 vCPU) with room for the
// host, the worker and Pillow's buffers; raise batchSize only together with instanceMemoryMB.
// HTTP, the Event Grid blob trigger and the Durable functions scale as their own groups.
// maximumInstanceCount caps the cost of a burst.
resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    publicNetworkAccess: 'Enabled'
    // Key Vault references (@Microsoft.KeyVault(...)) are resolved with this identity.
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      // Scale: see the note above this resource.
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

resource functionAppSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: functionApp
  name: 'appsettings'
  properties: union(appSettings, hostSettings)
}

output name string = functionApp.name
output defaultHostName string = functionApp.properties.defaultHostName
output planName string = plan.name
