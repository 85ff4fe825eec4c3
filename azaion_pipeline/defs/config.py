"""Run config that is checked when a run is launched, not when its step starts.

Dagster turns a ``dg.Config`` class into a launchpad schema of plain types: the pydantic
bounds and validators (``ge``, ``multiple_of``, a model validator) only run when the step
builds its config, after the run was created and maybe queued for hours. ``checked(Cls)`` is
the same schema (fields, defaults, descriptions) plus a post-processing step that validates
the whole value with ``Cls``, so a bad value is refused while Dagster resolves the run
config: before any run exists, from the UI launchpad, ``dagster asset materialize -c`` and
``execute_in_process`` alike, with the offending field named.
"""

from __future__ import annotations

from typing import Any, TypeVar

import dagster as dg
from pydantic import ValidationError

C = TypeVar("C", bound=dg.Config)


class _CheckedShape(dg.Shape):
    """A Shape that validates its value with a Config class after Dagster's own type checks."""

    # Shape.__new__ returns a cached plain Shape per field set; this one must stay itself.
    def __new__(cls, config_class: type[dg.Config]):
        return object.__new__(cls)

    def __init__(self, config_class: type[dg.Config]):
        self._initialized = False
        super().__init__(config_class.to_fields_dict(), description=config_class.__doc__)
        self.config_class = config_class

    def post_process(self, value: Any) -> Any:
        try:
            self.config_class.model_validate(value)
        except ValidationError as exc:
            raise dg.DagsterInvalidConfigError(
                f"{self.config_class.__name__} refused: {describe(exc)}", [], value
            ) from None
        return value


def describe(error: ValidationError) -> str:
    """One line per problem, each naming its field (or the rule that spans fields)."""
    return "; ".join(
        f"{'.'.join(str(part) for part in problem['loc']) or 'config'}: {problem['msg']}"
        for problem in error.errors()
    )


def checked(config_class: type[dg.Config]) -> dg.Field:
    """The launchpad schema of ``config_class``, validated when a run is launched."""
    return dg.Field(_CheckedShape(config_class))


def config_of(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext | dg.OpExecutionContext,
    config_class: type[C],
) -> C:
    """The step's config as ``config_class`` (already validated when the run was launched)."""
    if isinstance(context, dg.AssetCheckExecutionContext):
        return config_class.model_validate(context.op_execution_context.op_config)
    return config_class.model_validate(context.op_config)
