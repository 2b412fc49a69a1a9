"""devhost: pixelpipe's local Functions host (development and tests only; never deployed).

Azure Functions Core Tools cannot be installed where its download site is out of reach, so
this package runs the unchanged `function_app.py` against the Azurite storage emulator:
HTTP triggers, queue triggers with host.json semantics, the Event Grid blob trigger (by
watching the container), Durable Functions orchestrations (by feeding the real SDK the
histories the Durable extension would send), and a dev token issuer.
The app never imports this package, and `.funcignore` keeps it out of deployments.
"""
