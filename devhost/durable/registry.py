"""The Durable functions of an app, and calling an activity the way the Python worker does.

In the v2 programming model, `@app.orchestration_trigger(context_name=...)` wraps the user's
generator function: the app's `Function.get_user_function()` is the SDK's `handle(context)`,
and the raw generator is its `orchestrator_function` attribute. `@app.activity_trigger(
input_name=...)` keeps the user function as is; the worker calls it with the decoded input
as the keyword argument `input_name`. The Durable name of either is the trigger's
`orchestration`/`activity` property if set, else the function name (as the extension's
trigger binding providers decide).

`app.get_functions()` can be called once per app object (a second call fails: "does not have
a unique function name"), and the devhost's indexer is the one to call it. So `app_functions`
takes the `Function` objects that call returned; `app_functions_of` reads an app's function
builders directly, without building or validating anything.

Activity payloads go through the same converter the worker uses (`ActivityTriggerConverter`
of azure-functions): the input is decoded from JSON text (falling back to the raw text if it
is not JSON) and the return value encoded with the Durable JSON codec.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import azure.durable_functions as df
import azure.functions as func
from azure.functions import meta
from azure.functions.durable_functions import ActivityTriggerConverter

from devhost.durable.replay import OrchestratorFunction

__all__ = [
    "ActivityFunction",
    "AppFunctions",
    "app_functions",
    "app_functions_of",
    "invoke_activity",
    "orchestrator_from_app",
]

ActivityFunction = Callable[[Any], Any]
"""An activity as the host calls it: the decoded input in, a JSON-serialisable value out."""

_ORCHESTRATION_TRIGGER = "orchestrationTrigger"
_ACTIVITY_TRIGGER = "activityTrigger"


@dataclass(frozen=True)
class AppFunctions:
    """An app's orchestrators (raw generator functions) and activities, by Durable name."""

    orchestrators: dict[str, OrchestratorFunction]
    activities: dict[str, ActivityFunction]


def app_functions(functions: Iterable[func.Function]) -> AppFunctions:
    """The Durable functions among `functions` (the result of `app.get_functions()`)."""
    orchestrators: dict[str, OrchestratorFunction] = {}
    activities: dict[str, ActivityFunction] = {}
    for function in functions:
        trigger = function.get_trigger()
        if trigger is None:
            continue
        user_function: Any = function.get_user_function()
        if trigger.get_binding_name() == _ORCHESTRATION_TRIGGER:
            name = _durable_name(function, getattr(trigger, "orchestration", None))
            orchestrators[name] = user_function.orchestrator_function
        elif trigger.get_binding_name() == _ACTIVITY_TRIGGER:
            name = _durable_name(function, getattr(trigger, "activity", None))
            activities[name] = _bind_activity(user_function, trigger.name)
    return AppFunctions(orchestrators, activities)


def _durable_name(function: func.Function, declared: str | None) -> str:
    return declared or function.get_function_name() or function.get_user_function().__name__


def app_functions_of(app: func.FunctionRegister | df.Blueprint) -> AppFunctions:
    """The Durable functions of `app` (a DFApp or Blueprint), leaving `get_functions()` to
    whoever indexes the app."""
    return app_functions(builder._function for builder in app._function_builders)


def orchestrator_from_app(
    app: func.FunctionRegister | df.Blueprint, name: str
) -> OrchestratorFunction:
    """The raw orchestrator generator function registered in `app` under `name`."""
    orchestrators = app_functions_of(app).orchestrators
    if name not in orchestrators:
        raise KeyError(f"no orchestrator {name!r} in the app (has: {sorted(orchestrators)})")
    return orchestrators[name]


def invoke_activity(activity: ActivityFunction, input_json: str | None) -> str:
    """Run `activity` on the JSON text `input_json`; its result as JSON text.

    Coroutine functions are run to completion on a fresh event loop. Exceptions propagate.
    """
    value = (
        None
        if input_json is None
        else ActivityTriggerConverter.decode(meta.Datum(input_json, "json"), trigger_metadata=None)
    )
    result = activity(value)
    if inspect.isawaitable(result):
        result = asyncio.run(_awaited(result))
    encoded: str = ActivityTriggerConverter.encode(result, expected_type=None).value
    return encoded


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _bind_activity(user_function: Callable[..., Any], input_name: str) -> ActivityFunction:
    def activity(value: Any) -> Any:
        return user_function(**{input_name: value})

    activity.__name__ = getattr(user_function, "__name__", "activity")
    return activity
