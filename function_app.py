"""pixelpipe's Azure Functions app (Python v2 programming model).

This file only builds the app and registers the blueprints; every function lives in
`shared/functions/` and its logic in `shared/`.
"""

import azure.durable_functions as df
import azure.functions as func

from shared import telemetry
from shared.functions import api, blobs, orchestration, queues

telemetry.configure()

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
for blueprint in (api.bp, queues.bp, orchestration.bp, blobs.bp):
    app.register_functions(blueprint)
