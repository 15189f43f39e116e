"""Options declared once: a pydantic model whose fields carry their default, type, check and
help, from which the command-line flags are made and to which parsed flags are validated back.

    class RayOptions(Options):
        workers: int = opt(1, ge=1, flag="--workers", metavar="N", help="DDP workers")

    add_flags(parser_group, RayOptions, exclude=("resume",))   # --workers N ...
    opts = from_args(RayOptions, args)                         # checked; errors name the flag

A violated check is one line naming the flag (`--workers must be >= 1, got 0`), never a
traceback; the same model is what the Python API and the sweep plan use.
"""
from __future__ import annotations

import argparse
from typing import Any, Dict, Iterable, Optional, Type, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from raygan.errors import ConfigError

T = TypeVar("T", bound="Options")


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    def dump(self) -> Dict[str, Any]:
        return self.model_dump(mode="json")


def opt(default: Any = None, *, flag: Optional[str] = None, metavar: Optional[str] = None, help: str = "",
        choices: Optional[Iterable[Any]] = None, **checks: Any) -> Any:
    """A field with its flag and help; `checks` are pydantic constraints (ge, gt, le, ...)."""
    extra = {"flag": flag, "metavar": metavar, "choices": list(choices) if choices else None}
    return Field(default=default, description=help, json_schema_extra=extra, **checks)


def _flag(name: str, info) -> str:
    extra = info.json_schema_extra or {}
    return extra.get("flag") or "--" + name.replace("_", "-")


def add_flags(parser, model: Type[Options], exclude: Iterable[str] = ()) -> None:
    """One argparse flag per field (bools become store_true), defaults left to the model."""
    for name, info in model.model_fields.items():
        if name in exclude:
            continue
        extra = info.json_schema_extra or {}
        kwargs: Dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS}
        help_text = info.description or ""
        if info.default not in (None, False, "") and info.annotation is not bool:
            help_text += f" (default {info.default})"
        ann = info.annotation
        if ann is bool:
            kwargs["action"] = "store_true"
        else:
            base = _scalar(ann)
            if base is not None:
                kwargs["type"] = base
            if extra.get("metavar"):
                kwargs["metavar"] = extra["metavar"]
            if extra.get("choices"):
                kwargs["choices"] = extra["choices"]
        parser.add_argument(_flag(name, info), help=help_text, **kwargs)


def _scalar(ann: Any):
    import typing

    if ann in (int, float, str):
        return ann
    args = [a for a in typing.get_args(ann) if a is not type(None)]
    if len(args) == 1 and args[0] in (int, float, str):
        return args[0]
    return None


def given(model: Type[Options], args: argparse.Namespace) -> Dict[str, Any]:
    """The fields the user set on the command line."""
    return {k: getattr(args, k) for k in model.model_fields if hasattr(args, k)}


def from_args(model: Type[T], args: argparse.Namespace, **extra: Any) -> T:
    return build(model, {**given(model, args), **extra})


def _message(err: Dict[str, Any]) -> str:
    ctx = err.get("ctx") or {}
    kind = err["type"]
    if kind == "greater_than_equal":
        return "must not be negative" if ctx["ge"] == 0 else f"must be at least {ctx['ge']}"
    if kind == "greater_than":
        return "must be positive" if ctx["gt"] == 0 else f"must be above {ctx['gt']}"
    if kind == "less_than_equal":
        return f"must be at most {ctx['le']}"
    return err["msg"].replace("Input should be", "must be").replace("Value error, ", "")


def build(model: Type[T], values: Dict[str, Any]) -> T:
    """The options, checked; the first problem as one line naming its flag."""
    try:
        return model.model_validate(values)
    except ValidationError as e:
        err = e.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else ""
        info = model.model_fields.get(name)
        flag = _flag(name, info) if info is not None else name
        msg = _message(err)
        got = err.get("input")
        raise ConfigError(f"{flag} {msg}" + (f", got {got!r}" if got is not None and not isinstance(got, dict)
                                             else "")) from None
