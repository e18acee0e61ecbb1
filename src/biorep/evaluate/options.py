"""The value schema of evaluation options: each evaluation's signature (types) and :data:`OPTION_LIMITS`.

``-o knn.k=0`` and ``-o karyotype.doubt_threshold=high`` fail here, before any work, with one line
naming the option, the value given and what is allowed.

Example:
    >>> check_option_values("knn", {"k": 0})  # doctest: +SKIP
    ConfigError: evaluation 'knn': option k=0 is not allowed (out of range); allowed: int, ≥ 1
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from biorep.errors import ConfigError

__all__ = ["OPTION_LIMITS", "check_option_values"]

#: Limits on option values beyond their types, by option name (the same name means the same thing
#: in every evaluation): ``(low, high, low_open, high_open)`` bounds or a tuple of choices.
OPTION_LIMITS: dict[str, Any] = {
    "k": (1, None, False, False),
    "temperature": (0, None, True, False),
    "C": (0, None, True, False),
    "max_iter": (1, None, False, False),
    "n_components": (1, None, False, False),
    "n_neighbors": (2, None, False, False),
    "min_dist": (0, None, False, False),
    "min_cluster_sizes": (2, None, False, False),  # each entry
    "max_points": (1, None, False, False),
    "max_per_set": (1, None, False, False),
    "expected_count": (1, None, False, False),
    "max_cost_per_crop": (0, None, True, False),
    "doubt_threshold": (0, 1, False, False),
    "val_fraction": (0, 1, True, True),
    "null_size": (1, None, False, False),
    "threshold": (0, 1, True, False),
    "metric_space": ("umap", "embedding"),
    "how": ("mean", "median"),
}


def _type_text(hint: Any) -> str:
    text = str(hint).replace("typing.", "").replace("collections.abc.", "")
    return text.removeprefix("<class '").removesuffix("'>")


def _limit_text(limit: Any) -> str:
    if isinstance(limit[0], str):
        return "one of " + ", ".join(limit)
    low, high, low_open, high_open = limit
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '≥'} {low}")
    if high is not None:
        parts.append(f"{'<' if high_open else '≤'} {high}")
    return " and ".join(parts)


def _within(value: Any, limit: Any) -> bool:
    if isinstance(limit[0], str):
        return value in limit
    if isinstance(value, (list, tuple)):
        return all(_within(v, limit) for v in value)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return True  # the type check speaks for other values
    low, high, low_open, high_open = limit
    if low is not None and (value <= low if low_open else value < low):
        return False
    return not (high is not None and (value >= high if high_open else value > high))


def _check_value(name: str, key: str, value: Any, hint: Any) -> None:
    """Raise a ConfigError naming ``key``, the value given and what is allowed when ``value`` does not fit."""
    from pydantic import TypeAdapter, ValidationError

    limit = OPTION_LIMITS.get(key)
    allowed = _type_text(hint) + (f", {_limit_text(limit)}" if limit is not None else "")
    problem = None
    if hint is not None:
        try:
            TypeAdapter(hint).validate_python(value, strict=isinstance(value, bool))
        except ValidationError as exc:
            problem = exc.errors()[0]["msg"].lower()
        except Exception:  # noqa: BLE001 - an annotation pydantic cannot check: the limits still apply
            pass
        if problem is None and isinstance(value, bool) and "bool" not in allowed:
            problem = "a true/false value is not a number"
    if problem is None and limit is not None and value is not None and not _within(value, limit):
        problem = "out of range"
    if problem is not None:
        raise ConfigError(f"evaluation {name!r}: option {key}={value!r} is not allowed ({problem}); "
                          f"allowed: {allowed}")


def _hints(fn: Any) -> dict[str, Any]:
    import typing

    try:
        return typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - unresolvable annotations: check names and limits only
        return {}


def check_option_values(name: str, options: Mapping[str, Any]) -> None:
    """Check every value of ``options`` against evaluation ``name``'s signature and the limits.

    Names are checked by :func:`biorep.evaluate.evaluator.check_options`; unknown ones are skipped here.
    """
    from biorep.evaluate.context import EVALUATIONS

    hints = _hints(EVALUATIONS.get(name))
    for key, value in options.items():
        _check_value(name, key, value, hints.get(key))
