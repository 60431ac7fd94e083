"""What every model of a config file shares, and how a refusal becomes one message.

A model refuses unknown keys (`extra="forbid"`): a misspelt key must fail, never fall back
to a default (a `raeder:` once left the reader of the disclosure policy knowing nothing).
A refusal is raised as the loader's own error class with one line: the file, the dotted
key (`sources.bca.vintages.2017.header_rwo`) and what was expected, with the closest known
key when there is one.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictInt,
    Tag,
    ValidationError,
    WrapValidator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from pipeline.errors import PipelineError
from pipeline.yamlfile import load_yaml

# The tags of the unions below (a value given as a mapping, a list or a scalar): part of a
# validation error's location, never of a key, so they are left out of the dotted key.
SHAPES = ("<mapping>", "<list>", "<scalar>")


class ConfigError(PipelineError, ValueError):
    """A config file without a loader module of its own (operations.yaml), or two files
    that disagree (`pipeline.config_models.project`)."""


class Model(BaseModel):
    """A part of a config file: unknown keys refused, immutable once read. Numbers are
    accepted where a text is expected (`sheet: 2017` is the sheet "2017", as before)."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        # before pydantic's own checks, so that the message can name the keys this part
        # accepts and the closest one (pydantic's extra_forbidden error knows neither)
        if not isinstance(data, dict):
            return data
        keys = [f.alias or name for name, f in cls.model_fields.items()]
        for key in data:
            if key not in keys:
                raise PydanticCustomError("unknown_key", "unknown key", {"key": key, "known": keys})
        for name, field in cls.model_fields.items():
            if field.is_required() and (field.alias or name) not in data:
                raise PydanticCustomError("missing_key", "is required",
                                          {"key": field.alias or name, "choices": _choices(field.annotation)})
        return data


class Row(BaseModel):
    """A row of a CSV file of config/: its columns were checked against the header once, and
    its fields take plain constraints (the rows of a France are 35,000: a Python call per
    cell would triple the reading)."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


def _choices(annotation: Any) -> list[str]:
    """The values of a Literal field (for 'is required (one of: ...)'), else none."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return [str(a) for a in get_args(annotation)] if get_origin(annotation) is Literal else []


def expect(kind: Any, words: str, **constraints: Any) -> Any:
    """`kind` with `constraints`, refused with 'must be <words>' (one phrase for the type and
    its bounds: "must be an integer ≥ 1", not pydantic's two separate messages)."""

    def reword(value: Any, handler: Any) -> Any:
        try:
            return handler(value)
        except ValidationError:
            raise PydanticCustomError("expected", "must be {words}", {"words": words}) from None

    return Annotated[kind, Field(**constraints), WrapValidator(reword)]


def shaped(what: str, **branches: Any) -> Any:
    """A value that may take several shapes (`mapping=`, `list=`, `scalar=`): validated by the
    one its shape picks, so a refusal names what that shape lacks instead of every branch."""

    def shape(value: Any) -> str | None:
        tag = "<mapping>" if isinstance(value, dict) else "<list>" if isinstance(value, list) else "<scalar>"
        return tag if tag.strip("<>") in branches else None

    members = tuple(Annotated[kind, Tag(f"<{name}>")] for name, kind in branches.items())
    return Annotated[Union[members], Discriminator(  # noqa: UP007 (a tuple of members)
        shape, custom_error_type="expected", custom_error_message=f"must be {what}",
        custom_error_context={"words": what})]


Switch = expect(StrictBool, "true or false")
PositiveInt = expect(StrictInt, "an integer ≥ 1", ge=1)
NonNegativeInt = expect(StrictInt, "an integer ≥ 0", ge=0)
Text = expect(str, "a non-empty text", min_length=1)
IDENT = r"^[a-z][a-z0-9_]*$"
Ident = expect(str, "lowercase letters, digits and _ (e.g. enfants_moins_3_ans)", pattern=IDENT)


def _regex(value: Any, handler: Any) -> Any:
    value = handler(value)
    try:
        re.compile(value)
    except re.error as exc:
        raise PydanticCustomError("expected", "must be a regular expression ({why})", {"why": str(exc)}) from None
    return value


Regex = Annotated[str, WrapValidator(_regex)]


# ---- one message from a refusal ----------------------------------------------------------

_PREDICATES = {
    "missing": "is required", "bool_type": "must be true or false", "bool_parsing": "must be true or false",
    "string_type": "must be a text", "int_type": "must be an integer", "int_parsing": "must be an integer",
    "int_from_float": "must be an integer", "float_type": "must be a number", "float_parsing": "must be a number",
    "list_type": "must be a list", "tuple_type": "must be a list", "dict_type": "must be a mapping (key: value)",
    "model_type": "must be a mapping (key: value)", "model_attributes_type": "must be a mapping (key: value)",
    "date_type": "must be a date YYYY-MM-DD", "date_parsing": "must be a date YYYY-MM-DD",
    "date_from_datetime_parsing": "must be a date YYYY-MM-DD", "too_short": "must not be empty",
    "string_too_short": "must not be empty",
}
# What a pattern of a Row's field means, for 'must be ...'.
PATTERN_WORDS: dict[str, str] = {}


def _got(value: Any) -> str:
    if value is None:
        return "nothing"  # `key:` with no value, or an empty cell
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _dotted(loc: tuple, doc: Any) -> str:
    """`sources.bca.vintages.2017.header_row`, `reader.inequalities[2]`: list positions in
    brackets (told apart from a year key by walking the document itself)."""
    out, node = "", doc
    for part in loc:
        if part in SHAPES:
            continue
        if part == "[key]":
            out += " (the name)"
            continue
        if isinstance(node, (list, tuple)) and isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if part < len(node) else None
        else:
            out += f".{part}" if out else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out


def describe(error: dict, doc: Any) -> str:
    """One refusal as '<key> <what was expected>' (or '<key>: <sentence>' for a rule of the file)."""
    loc, ctx, kind = tuple(error["loc"]), error.get("ctx") or {}, error["type"]
    if kind in ("unknown_key", "missing_key"):
        loc += (ctx["key"],)
    key = _dotted(loc, doc)
    if kind == "unknown_key":
        known = [str(k) for k in ctx["known"]]
        close = difflib.get_close_matches(str(ctx["key"]), known, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return f"{key} is an unknown key; expected one of: {', '.join(known)}{hint}"
    if kind == "missing_key":
        choices = f" (one of: {', '.join(ctx['choices'])})" if ctx.get("choices") else ""
        return f"{key} is required{choices}"
    if kind == "value_error":
        sentence = str(ctx.get("error", error["msg"]))
        return f"{key}: {sentence}" if key else sentence
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        close = difflib.get_close_matches(str(error.get("input")), choices, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        predicate = f"must be one of: {', '.join(choices)} (got {_got(error.get('input'))}{hint})"
    elif kind == "string_pattern_mismatch":
        pattern = ctx.get("pattern", "")
        predicate = f"must be {PATTERN_WORDS[pattern]}" if pattern in PATTERN_WORDS else f"must match {pattern}"
        predicate += f" (got {_got(error.get('input'))})"
    else:
        predicate = _PREDICATES.get(kind) or error["msg"][:1].lower() + error["msg"][1:]
        if kind not in ("missing",) and "input" in error and not isinstance(error["input"], (dict, list)):
            predicate += f" (got {_got(error['input'])})"
    return f"{key or 'the file'} {predicate}"


def validated(model: type[Model], doc: Any, where: str | Path, error: type[Exception]) -> Model:
    """`doc` (a parsed file) as `model`, or `error` with one message naming the file and the key.
    An empty file is an empty mapping (each key then defaults, or is said to be required)."""
    try:
        return model.model_validate({} if doc is None else doc)
    except ValidationError as exc:
        problems = exc.errors(include_url=False)
        message = f"{where}: {describe(problems[0], doc)}"
        if len(problems) > 1:
            others = sorted({_dotted(tuple(p["loc"]), doc) or "the file" for p in problems[1:]})
            message += f" (also: {', '.join(others[:5])}{', ...' if len(others) > 5 else ''})"
        raise error(message) from None


def read_yaml(path: Path, error: type[Exception], missing: str) -> Any:
    """A config file's document; `error` naming the file when it is missing or not YAML."""
    try:
        return load_yaml(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: {missing}") from None
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML ({exc})") from None
