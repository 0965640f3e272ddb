"""YAML files read with positions: the bottom of the agreements package.

Reads a file safely (size limit, UTF-8, no tags, no alias bombs), keeps the node tree so that
every problem points at `FILE:LINE:COL`, and validates the data into a pydantic model with
messages an official can act on. `LoadError` carries every problem found at once.

The loader (agreements, directories) and the calendar (its overrides file) build on this
module; it must not import either of them, nor anything outside the standard library, PyYAML,
pydantic and `plain_text`. A text value holding an invisible format character (a bidi override,
a zero-width space) is refused here, for every file at once.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from agreements.plain_text import describe, format_characters

Loc = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)

MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_YAML_VALUES = 200_000
"""Aliases can make a small file expand to billions of values ("billion laughs"): stop early."""
MAX_ALIAS_VALUES = 10_000
"""Values a file may repeat through aliases (`*name`). Agreements use an alias to share a list
of indicators or notices (tens of values); a 10 KB file whose aliases multiply a list to
195,000 invalid entries is refused before it is validated, instead of printing each one."""

_PLAIN_COLLECTION_TAGS = {"tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"}


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    line: int
    col: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        # One problem per line, even when a YAML key or value carries a line break.
        text = f"{self.file}:{self.line}:{self.col}: {where}{self.message}"
        return text.translate(_LINE_BREAKS)


_LINE_BREAKS = {ord(c): repr(c)[1:-1] for c in "\n\r\x85\u2028\u2029"}


class LoadError(Exception):
    """One or more problems in agreement or directory files."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


# --------------------------------------------------------------------------------------------
# YAML with positions


@dataclass
class YamlDoc:
    """A parsed YAML document: plain data plus the node tree that knows line and column."""

    file: str
    data: Any
    root: yaml.Node | None
    problems: list[Problem] = field(default_factory=list)

    def problem(self, loc: Loc, message: str, *, at_key: bool = False) -> Problem:
        line, col = self.position(loc, at_key=at_key)
        return Problem(self.file, line, col, format_loc(loc), message)

    def position(self, loc: Loc, *, at_key: bool = False) -> tuple[int, int]:
        node = self.root
        if node is None:
            return 1, 1
        for index, part in enumerate(loc):
            last = index == len(loc) - 1
            if isinstance(node, yaml.MappingNode):
                found = None
                for key_node, value_node in node.value:
                    if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(part):
                        found = key_node if (last and at_key) else value_node
                        break
                if found is None:
                    # pydantic puts a discriminated union's tag into the location: skip it.
                    if isinstance(part, str) and _mapping_kind(node) == part:
                        continue
                    break
                node = found
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                if not 0 <= part < len(node.value):
                    break
                node = node.value[part]
            else:
                break
        mark = node.start_mark
        return mark.line + 1, mark.column + 1


def _mapping_kind(node: yaml.MappingNode) -> str | None:
    for key_node, value_node in node.value:
        if getattr(key_node, "value", None) == "kind" and isinstance(value_node, yaml.ScalarNode):
            return str(value_node.value)
    return None


def format_loc(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _mark_problem(file: str, mark: yaml.Mark | None, message: str) -> Problem:
    if mark is None:
        return Problem(file, 1, 1, "", message)
    return Problem(file, mark.line + 1, mark.column + 1, "", message)


class _TooManyValues(Exception):
    pass


class _TooManyAliasValues(Exception):
    pass


class _Builder:
    """Turns composed YAML nodes into plain Python data, collecting problems as it goes."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        self.constructor = yaml.SafeLoader("")
        self._active: set[int] = set()
        self._built: set[int] = set()
        self._count = 0
        self._repeated = 0

    def build(self, node: yaml.Node, depth: int = 0, loc: Loc = ()) -> Any:
        self._count += 1
        if self._count > MAX_YAML_VALUES:
            raise _TooManyValues
        if id(node) in self._built:
            # Reached again through an alias: everything under it counts again.
            self._repeated += 1
            if self._repeated > MAX_ALIAS_VALUES:
                raise _TooManyAliasValues
        else:
            self._built.add(id(node))
        if depth > 60:
            self.problems.append(_mark_problem(self.file, node.start_mark, "nesting too deep"))
            return None
        if id(node) in self._active:
            self.problems.append(
                _mark_problem(self.file, node.start_mark, "recursive YAML alias is not allowed")
            )
            return None
        if isinstance(node, yaml.ScalarNode):
            try:
                value = self.constructor.construct_object(node, deep=True)
            except Exception as exc:  # a scalar YAML cannot turn into a value, e.g. 2025-02-30
                # A marked error's str() spans several lines and repeats the position.
                reason = exc.problem if isinstance(exc, yaml.MarkedYAMLError) else None
                message = f"invalid value {_shown(node.value)}: {reason or exc}"
                self.problems.append(_mark_problem(self.file, node.start_mark, message))
                return None
            if isinstance(value, str):
                value = unicodedata.normalize("NFC", value)
                self._refuse_format_characters(value, node, loc)
            return value
        if node.tag not in _PLAIN_COLLECTION_TAGS:
            # The builder only makes plain lists and dicts: a tag such as !!python/object,
            # !!set or !custom would otherwise be silently dropped.
            self.problems.append(
                _mark_problem(
                    self.file,
                    node.start_mark,
                    f"unsupported YAML tag {node.tag.replace('tag:yaml.org,2002:', '!!')!r}",
                )
            )
            return None
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [
                    self.build(child, depth + 1, (*loc, i)) for i, child in enumerate(node.value)
                ]
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, depth, loc)
        finally:
            self._active.discard(id(node))
        self.problems.append(_mark_problem(self.file, node.start_mark, "unsupported YAML node"))
        return None

    def _refuse_format_characters(self, value: str, node: yaml.Node, loc: Loc) -> None:
        found = format_characters(value)
        if found:
            names = ", ".join(describe(char) for char in found)
            message = f"invisible format character {names} is not allowed; delete it"
            mark = node.start_mark
            self.problems.append(
                Problem(self.file, mark.line + 1, mark.column + 1, format_loc(loc), message)
            )

    def _mapping(self, node: yaml.MappingNode, depth: int, loc: Loc) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.problems.append(
                    _mark_problem(
                        self.file, key_node.start_mark, "YAML merge keys (<<) are not supported"
                    )
                )
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.problems.append(
                    _mark_problem(
                        self.file, key_node.start_mark, "a mapping key must be plain text"
                    )
                )
                continue
            key = str(key_node.value)
            self._refuse_format_characters(key, key_node, (*loc, key))
            if key in result:
                self.problems.append(
                    _mark_problem(self.file, key_node.start_mark, f"duplicate key {key!r}")
                )
                continue
            result[key] = self.build(value_node, depth + 1, (*loc, key))
        return result


_UNCLOSED_QUOTE_ENDS = {
    "found unexpected end of stream": "the end of the file",
    "found unexpected document separator": "the document separator '---'",
}
_UNCLOSED_FLOW = {"while parsing a flow sequence": "[", "while parsing a flow mapping": "{"}
_FLOW_EXPECTED = re.compile(r"expected ',' or '([]}])', but got (.+)")
_TOKEN_NAMES = {"'<stream end>'": "the end of the file", "'<scalar>'": "a value"}


def _syntax_problem(file: str, text: str, exc: yaml.MarkedYAMLError) -> Problem:
    """A syntax error, reported where the mistake is rather than where PyYAML gave up.

    An unclosed quote or bracket, or a key without its colon, is only noticed lines later
    (at the end of the file, at the next key): the problem then points at where the quote,
    bracket or key begins, so that an editor jumps there, and names where parsing stopped.
    """
    start, stop = exc.context_mark, exc.problem_mark
    message = None
    if start is not None and stop is not None:
        stopped = f"{stop.line + 1}:{stop.column + 1}"
        flow = _FLOW_EXPECTED.fullmatch(exc.problem or "")
        if exc.context == "while scanning a quoted scalar" and exc.problem in _UNCLOSED_QUOTE_ENDS:
            found = _UNCLOSED_QUOTE_ENDS[exc.problem]
            message = f"the quote opened here is not closed before {found} at {stopped}"
        elif exc.context in _UNCLOSED_FLOW and flow is not None:
            found = _TOKEN_NAMES.get(flow[2], flow[2])
            message = (
                f"the {_UNCLOSED_FLOW[exc.context]!r} opened here is not closed before {found} "
                f"at {stopped} (expected ',' or {flow[1]!r})"
            )
        elif exc.context == "while scanning a simple key" and exc.problem == (
            "could not find expected ':'"
        ):
            message = (
                "expected ': ' (a colon and a space) after the key starting here, "
                f"but found none before {stopped}"
            )
    if message is None and stop is not None and (quote := _runaway_quote(text, stop)):
        # An unclosed quote, closed by the opening quote of later text.
        start, end = quote.start_mark, quote.end_mark
        message = (
            f"the quote opened here is only closed at {end.line + 1}:{end.column} "
            "(is its closing quote missing?); parsing stopped at "
            f"{stop.line + 1}:{stop.column + 1}: {exc.problem or exc.context}"
        )
    if message is not None:
        return _mark_problem(file, start, f"YAML syntax error: {message}")
    return _mark_problem(file, stop or start, f"YAML syntax error: {exc.problem or exc.context}")


def _runaway_quote(text: str, stop: yaml.Mark) -> yaml.ScalarToken | None:
    """A quoted scalar over several lines that ends on the line where parsing stopped."""
    found = None
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if token.start_mark.index >= stop.index:
                break
            if (
                isinstance(token, yaml.ScalarToken)
                and token.style in {'"', "'"}
                and token.start_mark.line < token.end_mark.line == stop.line
            ):
                found = token
    except yaml.YAMLError:
        pass
    return found


_FAST_LOADER = getattr(yaml, "CSafeLoader", None)
"""libyaml's parser, when PyYAML has it: the same nodes and positions, ten times faster (a
directory of 115 agencies: 0.5 s in Python)."""


def _compose(text: str) -> yaml.Node | None:
    """The YAML node tree; errors always come from the Python parser, whose messages the
    problems quote (libyaml words them differently)."""
    if _FAST_LOADER is not None:
        try:
            return yaml.compose(text, Loader=_FAST_LOADER)
        except (yaml.YAMLError, RecursionError):
            pass
    return yaml.compose(text, Loader=yaml.SafeLoader)


def parse_yaml(text: str, file: str) -> YamlDoc:
    """Parse one YAML document; syntax problems go into the returned `YamlDoc`."""
    text = unicodedata.normalize("NFC", text)
    try:
        root = _compose(text)
    except yaml.MarkedYAMLError as exc:
        return YamlDoc(file, None, None, [_syntax_problem(file, text, exc)])
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        col = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        message = f"YAML syntax error: special character U+{exc.character:04X} is not allowed"
        return YamlDoc(file, None, None, [Problem(file, line, col, "", message)])
    except yaml.YAMLError as exc:
        return YamlDoc(file, None, None, [Problem(file, 1, 1, "", f"YAML error: {exc}")])
    except RecursionError:
        return YamlDoc(file, None, None, [Problem(file, 1, 1, "", "YAML nesting too deep")])
    if root is None:
        return YamlDoc(file, None, None, [Problem(file, 1, 1, "", "the file is empty")])
    builder = _Builder(file)
    try:
        data = builder.build(root)
    except RecursionError:
        return YamlDoc(file, None, root, [Problem(file, 1, 1, "", "YAML nesting too deep")])
    except _TooManyValues:
        message = f"the YAML expands to more than {MAX_YAML_VALUES} values (through aliases?)"
        return YamlDoc(file, None, root, [Problem(file, 1, 1, "", message)])
    except _TooManyAliasValues:
        message = (
            f"the YAML's aliases (*name) repeat more than {MAX_ALIAS_VALUES} values; "
            "write the values out or use fewer aliases"
        )
        return YamlDoc(file, None, root, [Problem(file, 1, 1, "", message)])
    return YamlDoc(file, data, root, builder.problems)


def read_text(path: Path) -> tuple[str | None, Problem | None]:
    name = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, Problem(name, 1, 1, "", f"cannot read file: {exc.strerror or exc}")
    if len(raw) > MAX_FILE_BYTES:
        return None, Problem(name, 1, 1, "", f"file is larger than {MAX_FILE_BYTES} bytes")
    # Strip a byte-order mark first: error offsets then index the same bytes as `body`.
    body = raw.removeprefix(b"\xef\xbb\xbf")
    try:
        return body.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        line = body[: exc.start].count(b"\n") + 1
        line_start = body.rfind(b"\n", 0, exc.start) + 1
        # Columns count characters, as YAML positions do.
        col = len(body[line_start : exc.start].decode("utf-8", errors="replace")) + 1
        return None, Problem(name, line, col, "", "file is not valid UTF-8")


def validate_model(doc: YamlDoc, model: type[M]) -> M | None:
    if doc.problems:
        return None
    if not isinstance(doc.data, dict):  # also a document that is only `~` or `---`
        doc.problems.append(Problem(doc.file, 1, 1, "", "the file must be a YAML mapping"))
        return None
    try:
        return model.model_validate(doc.data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            loc = tuple(error["loc"])
            at_key = error["type"] == "extra_forbidden"
            message = _message(error)
            if at_key and (guess := closest_name(str(loc[-1]), _field_names(model, loc[:-1]))):
                message += f"; did you mean {guess!r}?"
            doc.problems.append(doc.problem(_strip_tags(loc, doc), message, at_key=at_key))
        return None


def _field_names(model: type[BaseModel], loc: Loc) -> set[str]:
    """The field names a mapping at pydantic error location `loc` may have.

    Follows the location through the model's annotations: fields, list indexes, optional
    values, and discriminated unions (whose tag, e.g. 'recurring', pydantic puts in the
    location). Empty when the location leads to no model.
    """
    current: list[Any] = [model]
    for part in loc:
        current = [step for annotation in current for step in _field_step(annotation, part)]
    return {
        name
        for annotation in current
        for member in _union_members(annotation)
        if isinstance(member, type) and issubclass(member, BaseModel)
        for name in member.model_fields
    }


def _field_step(annotation: Any, part: str | int) -> list[Any]:
    steps: list[Any] = []
    for member in _union_members(annotation):
        if isinstance(member, type) and issubclass(member, BaseModel):
            fields = member.model_fields
            if part in fields:
                steps.append(fields[str(part)].annotation)
            elif any(
                get_origin(f.annotation) is Literal and part in get_args(f.annotation)
                for f in fields.values()
            ):
                steps.append(member)  # the discriminated union's tag: stay on this variant
        elif get_origin(member) is list and isinstance(part, int):
            steps.extend(get_args(member)[:1])
        elif get_origin(member) is dict and isinstance(part, str):
            steps.extend(get_args(member)[1:2])
    return steps


def _union_members(annotation: Any) -> list[Any]:
    """`annotation` without `Annotated` metadata, split into the members of a union."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _union_members(get_args(annotation)[0])
    if origin is Union or origin is UnionType:
        return [member for arg in get_args(annotation) for member in _union_members(arg)]
    return [annotation]


def _strip_tags(loc: Loc, doc: YamlDoc) -> Loc:
    """Drop discriminated-union tags (e.g. 'recurring' in due.recurring.month) from a location."""
    kinds = {"fixed", "recurring", "quarterly", "every", "after_event", "relative", "none"}
    out: list[str | int] = []
    for i, part in enumerate(loc):
        if isinstance(part, str) and part in kinds and i > 0 and loc[i - 1] == "due":
            continue
        out.append(part)
    return tuple(out)


_PATTERN_HINTS = {
    r"^[A-Z][A-Z0-9_]{0,39}$": (
        "is not an agency code: use upper-case letters, digits and underscores, e.g. SNV"
    ),
    r"^[a-z][a-z0-9_]{0,39}$": (
        "is not a group code: use lower-case letters, digits and underscores, e.g. so_ban_nganh"
    ),
    r"^[a-z0-9][a-z0-9-]{0,59}$": (
        "is not an identifier: use lower-case letters, digits and hyphens, e.g. bao-cao-6-thang"
    ),
    r"^[A-Za-z0-9][A-Za-z0-9.]{0,19}$": (
        "is not an item number: use letters, digits and dots, e.g. 3 or II.3"
    ),
    r"^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$": (
        "is not an e-mail address, e.g. ten.ho@snv.example"
    ),
}

_DATE_ERRORS = {"date_type", "date_parsing", "date_from_datetime_parsing"}
_TIME_ERRORS = {"time_type", "time_parsing"}


def _shown(value: Any) -> str:
    """The offending value as the officer wrote it: quoted text, a date as 2025-05-15."""
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _message(error: Any) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "field required"
    if kind == "string_pattern_mismatch" and ctx.get("pattern") in _PATTERN_HINTS:
        return f"{_shown(error['input'])} {_PATTERN_HINTS[ctx['pattern']]}"
    if kind in _DATE_ERRORS:
        reason = f" ({ctx['error']})" if ctx.get("error") else ""
        return f"{_shown(error['input'])} is not a date{reason}: write YYYY-MM-DD, e.g. 2025-05-15"
    if kind in _TIME_ERRORS:
        error_text = str(ctx.get("error") or "")
        # "input is too short" says nothing to an officer who wrote 7h30; a range error does.
        reason = f" ({error_text})" if "range" in error_text else ""
        return (
            f"{_shown(error['input'])} is not a time of day{reason}: "
            'write HH:MM on the 24-hour clock, in quotes, e.g. "07:30"'
        )
    if kind == "date_from_datetime_inexact":
        return f"{_shown(error['input'])} is not a date: give the day only, e.g. 2025-05-15"
    if kind == "too_short" and isinstance(error["input"], str) and ctx.get("min_length") == 1:
        return "must not be empty"
    if kind in {"enum", "literal_error"} and "expected" in ctx:
        return f"{_shown(error['input'])} is not one of {ctx['expected']}"
    if kind == "union_tag_invalid":
        return (
            "unknown kind "
            f"{error.get('ctx', {}).get('tag')!r}; expected one of fixed, recurring, quarterly, "
            "every, after_event, relative, none"
        )
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def closest_name(value: str, known: Iterable[str]) -> str | None:
    """The known name `value` is most likely a typo of, for a 'did you mean' hint; or None."""
    close = difflib.get_close_matches(value, sorted(set(known)), n=1)
    return close[0] if close else None
