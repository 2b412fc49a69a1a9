// The Event Grid system topic of the storage account. The subscription that delivers
// BlobCreated events for `inbox` to the Function's blob extension webhook is created after
// deployment by infra/hooks/postdeploy.(sh|ps1): its URL carries the `blobs_extension` system
// key, which only exists once the app's code runs (the pattern of the
// functions-quickstart-python-azd-eventgrid-blob sample).

param name string
param location string
param tags object = {}
param storageAccountName string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource systemTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: name
  location: location
  tags: tags
  properties: {
    source: storage.id
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

output name string = systemTopic.name
