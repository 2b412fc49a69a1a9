#!/usr/bin/env bash
# azd postdeploy hook: subscribe the Function's Event Grid blob trigger (`ingest`, on container
# `inbox`) to the storage account's BlobCreated events.
#
# The subscription's webhook URL carries the `blobs_extension` system key, which the Functions
# host creates only once the deployed code with the blob trigger has started. That is why this
# runs after `azd deploy` instead of in Bicep (Microsoft's functions-quickstart-python-azd-
# eventgrid-blob does the same). Safe to re-run: the subscription is created or updated in place.
#
# Needs: the Azure CLI, logged in (`az login`) to the subscription azd deployed to.
# Reads (azd passes them as environment variables; by hand, `azd env get-value` fills them in):
#   AZURE_RESOURCE_GROUP, AZURE_FUNCTION_APP_NAME, AZURE_FUNCTION_APP_HOSTNAME,
#   AZURE_EVENTGRID_SYSTEM_TOPIC_NAME, BLOB_TRIGGER_FUNCTION_NAME, BLOB_TRIGGER_SUBJECT_PREFIX
set -euo pipefail

subscription_name=inbox-blob-created
attempts=${PIXELPIPE_KEY_WAIT_ATTEMPTS:-30}   # x 10 s

if ! command -v az >/dev/null 2>&1; then
  echo "postdeploy: the Azure CLI (az) is required; install it and run 'az login'." >&2
  exit 1
fi

need() {
  local name=$1 current=${!1:-}
  if [ -z "$current" ] && command -v azd >/dev/null 2>&1; then
    current=$(azd env get-value "$name" 2>/dev/null || true)
  fi
  if [ -z "$current" ]; then
    echo "postdeploy: $name is not set; run 'azd provision' first." >&2
    return 1
  fi
  printf '%s' "$current"
}

resource_group=$(need AZURE_RESOURCE_GROUP)
app=$(need AZURE_FUNCTION_APP_NAME)
host=$(need AZURE_FUNCTION_APP_HOSTNAME)
topic=$(need AZURE_EVENTGRID_SYSTEM_TOPIC_NAME)
function_name=$(need BLOB_TRIGGER_FUNCTION_NAME)
subject_prefix=$(need BLOB_TRIGGER_SUBJECT_PREFIX)

# Wake the app (Flex Consumption scales to zero) and wait for the blob extension's system key.
key=""
for attempt in $(seq 1 "$attempts"); do
  if command -v curl >/dev/null 2>&1; then
    curl --silent --output /dev/null --max-time 30 "https://$host/api/health" || true
  fi
  key=$(az functionapp keys list --resource-group "$resource_group" --name "$app" \
    --query "systemKeys.blobs_extension" --output tsv 2>/dev/null || true)
  [ -n "$key" ] && break
  echo "postdeploy: waiting for the blobs_extension system key ($attempt/$attempts) ..."
  sleep 10
done
if [ -z "$key" ]; then
  echo "postdeploy: $app has no blobs_extension system key; did the deployment start? Check the" \
    "app's logs, then re-run: azd hooks run postdeploy" >&2
  exit 1
fi

# The URL holds a secret: it is passed to az, never printed.
endpoint="https://$host/runtime/webhooks/blobs?functionName=Host.Functions.$function_name&code=$key"

az eventgrid system-topic event-subscription create \
  --name "$subscription_name" \
  --resource-group "$resource_group" \
  --system-topic-name "$topic" \
  --endpoint-type webhook \
  --endpoint "$endpoint" \
  --event-delivery-schema EventGridSchema \
  --included-event-types Microsoft.Storage.BlobCreated \
  --subject-begins-with "$subject_prefix" \
  --max-delivery-attempts 30 \
  --event-ttl 1440 \
  --output none

echo "postdeploy: Event Grid subscription '$subscription_name' delivers BlobCreated events under" \
  "$subject_prefix to function '$function_name'."
