"""The Functions blueprints: thin triggers that parse their binding, delegate, and answer.

api            HTTP routes (API.md)
queues         dispatch (jobs), worker (ops), worker_poison (ops-poison)
orchestration  the `job` orchestrator and its `finalize` / `deliver_webhook` activities
blobs          ingest: the Event Grid blob trigger on `inbox`
"""
