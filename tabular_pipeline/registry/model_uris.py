"""Model URIs: what kind each one is, and the registered version or logged model behind it."""

from __future__ import annotations

import re

from tabular_pipeline.errors import PipelineError, one_line

# MLflow names logged models `m-` plus a UUID's 32 hex digits; `models:/m-fraud@production` is a
# registered model that merely starts with `m-`.
LOGGED_MODEL_URI = re.compile(r"^models:/(m-[0-9a-f]{32})$")
EXPECTED_URIS = (
    "models:/<name>/<version or stage>, models:/<name>@<alias>, models:/m-<32 hex digits> or runs:/<run id>/<path>"
)


def parse_model_uri(model_uri: str) -> tuple[str, str, str]:
    """Split a model URI into (kind, id, path): ("logged", model id, "") or ("run", run id, path).

    Registered-model URIs (``models:/<name>/<version>``, ``models:/<name>@<alias>``) come back as
    ("registered", uri, "").
    """
    logged = LOGGED_MODEL_URI.match(model_uri)
    if logged:
        return "logged", logged.group(1), ""
    if model_uri.startswith("runs:/"):
        run_id, _, path = model_uri[len("runs:/") :].partition("/")
        if run_id and path:
            return "run", run_id, path.strip("/")
    reference = model_uri[len("models:/") :] if model_uri.startswith("models:/") else ""
    name, separator, which = reference.partition("@") if "@" in reference else reference.partition("/")
    if name and separator and which and "/" not in which:
        return "registered", model_uri, ""
    raise PipelineError(f"model_uri {model_uri!r} is not a model URI; expected {EXPECTED_URIS}")


def registered_name(model_uri: str) -> str:
    """The registered model's name in ``models:/<name>/<version>`` or ``models:/<name>@<alias>``."""
    reference = model_uri[len("models:/") :]
    return reference.split("@", 1)[0] if "@" in reference else reference.partition("/")[0]


def closest_registered_names(client, name: str) -> list[str]:
    """Registered model names that look like `name` (a typo, another case), closest first."""
    import difflib

    from mlflow.exceptions import MlflowException

    try:
        names = [model.name for model in client.search_registered_models(max_results=1000)]
    except MlflowException:
        return []
    lowered = {candidate.lower(): candidate for candidate in names}
    return [lowered[match] for match in difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.6)]


def registered_version(client, model_uri: str):
    """The `ModelVersion` a registered-model URI points at (a version, a stage or an alias).

    Raises:
        PipelineError: in one line, naming close registered names when the name is unknown.
    """
    from mlflow.exceptions import MlflowException

    reference = model_uri[len("models:/") :]
    name = registered_name(model_uri)
    try:
        if "@" in reference:
            return client.get_model_version_by_alias(name, reference.split("@", 1)[1])
        which = reference.partition("/")[2]
        if which.isdigit():
            return client.get_model_version(name, which)
        latest = client.get_latest_versions(name, [which])
    except MlflowException as error:
        if not client_knows_model(client, name):
            close = closest_registered_names(client, name)
            hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
            raise PipelineError(
                f"model {model_uri} does not exist: no registered model {name!r}{hint}; expected a registered version"
            ) from None
        raise PipelineError(
            f"model {model_uri} does not exist ({one_line(error, 200)}); expected a registered version"
        ) from None
    if not latest:
        raise PipelineError(
            f"model {model_uri} has no version in stage {which!r}; expected models:/<name>/<version> or "
            "models:/<name>@<alias>"
        )
    return latest[0]


def client_knows_model(client, name: str) -> bool:
    """Whether a registered model of that name exists (True when the registry cannot say)."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException as error:
        return error.error_code != "RESOURCE_DOES_NOT_EXIST"
    return True


def resolve_registered_model(client, model_uri: str) -> str:
    """The logged model behind a registered-model URI; other model URIs come back as given."""
    kind, _, _ = parse_model_uri(model_uri)
    return registered_version(client, model_uri).source if kind == "registered" else model_uri
