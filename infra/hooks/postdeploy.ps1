# azd postdeploy hook (Windows): subscribe the Function's Event Grid blob trigger (`ingest`, on
# container `inbox`) to the storage account's BlobCreated events. Same steps as postdeploy.sh;
# see that file for why this is a hook and not Bicep.
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

$subscriptionName = 'inbox-blob-created'
$attempts = if ($env:PIXELPIPE_KEY_WAIT_ATTEMPTS) { [int]$env:PIXELPIPE_KEY_WAIT_ATTEMPTS } else { 30 }

if (-not (Get-Command az -ErrorAction SilentlyContinue)) {
    Write-Error "postdeploy: the Azure CLI (az) is required; install it and run 'az login'."
}

function Get-Required([string]$Name) {
    $value = [Environment]::GetEnvironmentVariable($Name)
    if ([string]::IsNullOrEmpty($value) -and (Get-Command azd -ErrorAction SilentlyContinue)) {
        $value = (& azd env get-value $Name 2>$null)
        if ($LASTEXITCODE -ne 0) { $value = '' }
    }
    if ([string]::IsNullOrEmpty($value)) {
        Write-Error "postdeploy: $Name is not set; run 'azd provision' first."
    }
    return $value.Trim()
}

$resourceGroup = Get-Required 'AZURE_RESOURCE_GROUP'
$app = Get-Required 'AZURE_FUNCTION_APP_NAME'
$hostName = Get-Required 'AZURE_FUNCTION_APP_HOSTNAME'
$topic = Get-Required 'AZURE_EVENTGRID_SYSTEM_TOPIC_NAME'
$functionName = Get-Required 'BLOB_TRIGGER_FUNCTION_NAME'
$subjectPrefix = Get-Required 'BLOB_TRIGGER_SUBJECT_PREFIX'

# Wake the app (Flex Consumption scales to zero) and wait for the blob extension's system key.
$key = ''
for ($attempt = 1; $attempt -le $attempts; $attempt++) {
    try { Invoke-WebRequest -Uri "https://$hostName/api/health" -UseBasicParsing -TimeoutSec 30 | Out-Null } catch { }
    $key = (& az functionapp keys list --resource-group $resourceGroup --name $app `
            --query 'systemKeys.blobs_extension' --output tsv 2>$null)
    if ($LASTEXITCODE -eq 0 -and -not [string]::IsNullOrWhiteSpace($key)) { break }
    $key = ''
    Write-Host "postdeploy: waiting for the blobs_extension system key ($attempt/$attempts) ..."
    Start-Sleep -Seconds 10
}
if ([string]::IsNullOrWhiteSpace($key)) {
    Write-Error "postdeploy: $app has no blobs_extension system key; did the deployment start? Check the app's logs, then re-run: azd hooks run postdeploy"
}
$key = $key.Trim()

# The URL holds a secret: it is passed to az, never printed. The quotes around it keep the '&'
# intact through az.cmd (the quickstart's workaround).
$endpoint = "https://$hostName/runtime/webhooks/blobs?functionName=Host.Functions.$functionName&code=$key"

& az eventgrid system-topic event-subscription create `
    --name $subscriptionName `
    --resource-group $resourceGroup `
    --system-topic-name $topic `
    --endpoint-type webhook `
    --endpoint "`"$endpoint`"" `
    --event-delivery-schema EventGridSchema `
    --included-event-types Microsoft.Storage.BlobCreated `
    --subject-begins-with $subjectPrefix `
    --max-delivery-attempts 30 `
    --event-ttl 1440 `
    --output none
if ($LASTEXITCODE -ne 0) { Write-Error 'postdeploy: creating the Event Grid subscription failed.' }

Write-Host "postdeploy: Event Grid subscription '$subscriptionName' delivers BlobCreated events under $subjectPrefix to function '$functionName'."
