"""Durable Functions for devhost: orchestrations run by the real SDK on the histories the
Durable extension would send it.

    history    the history events (JSON objects), their types and constructors
    replay     one episode, pure: history + new events -> SDK -> decision (the protocol)
    instances  what clients see: status record, start/raise/terminate rules, errors
    registry   an app's orchestrators and activities; calling an activity like the worker
    memory     an in-memory host on a controllable clock, for unit tests
    storage    the persistent host over Azurite (tables, blobs, queues), shared by processes
    webhooks   the Durable HTTP API the SDK's DurableOrchestrationClient calls, and the
               durableClient binding value that points the client at it

`replay.run_episode` is the engine; hosts (`memory` for unit tests, `storage` for `make run`)
keep `OrchestrationState`s, feed them messages and carry out the decisions.
"""
