"""Whatever a client sends to a task's four updates, the officer gets an answer: the update is
accepted and the task's status shows it, or it is refused with a short, clean message that names
the field or the rule. The worker never crashes, a workflow task never fails, the workflow never
fails, and its status query keeps answering.

The payloads are raw JSON-ish values sent by update name through the default pydantic data
converter, so nothing is validated on the client: valid reports, extension requests, decisions
and waivers (so that acceptance is exercised too), the same with fields missing, unknown or
replaced, and values of every JSON type: control characters, CR/LF, right-to-left and zero-width
marks, oversized text, NaN and infinities, huge integers, dates far out of range, naive
datetimes, actors of other agencies, admin roles, indicators with unknown codes, negative counts
or done > total. Also `None` and bytes (which the converter sends as binary, not JSON) and a
wrong number of arguments. `expect` says, from the specification, which answer each call must get.

One module-wide worker on the time-skipping test server; one open task per update kind, far from
its due date, receiving many updates: it is replaced when an accepted update closes it and after
`UPDATES_PER_TASK` updates (short histories). Every example checks the task's history for failed
workflow tasks; the last test checks every task the module touched.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from harness import QUANG_BINH, Harness, harness, local_now, midnight, obligation_input, sign
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError
from pydantic_core import to_json
from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import FailureError
from temporalio.testing import WorkflowEnvironment

from activities.models import Actor, IndicatorValue, Ratio
from agreements.loader import load_directory
from agreements.models import Indicator, IndicatorKind, OfficerRole
from workflows.obligation import ObligationWorkflow
from workflows.payloads import (
    ExtensionDecision,
    ExtensionRequest,
    SubmitReport,
    TaskOutcome,
    TaskState,
    TaskStatus,
    UpdateResult,
    Waiver,
)

UPDATE_TIMEOUT = 15.0
"""Seconds an update may take to answer; a refused one answers in milliseconds."""
CLOSE_TIMEOUT = 15.0
"""Seconds a task closed by an update may take to complete (receipt, audit)."""
UPDATES_PER_TASK = 60
EXTENSION_ROOM = timedelta(days=3 * 365)
"""The agreement's period ends this long after the first due date: room for extensions."""
MAX_REFUSAL = 2000
"""Characters: a refusal longer than this buries its reason (the CLI prints all of it)."""

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
    ],
)

DIRECTORY = load_directory(QUANG_BINH)
TASK_AGENCY = "STP"
"""The fuzzed tasks are Sở Tư pháp's, reported to Sở Nội vụ (the aggregator)."""
AGGREGATOR = "SNV"
CATEGORIES = ["Kinh tế", "Văn hóa - xã hội"]
INDICATORS = tuple(
    Indicator.model_validate(data)
    for data in (
        {"code": "cong-dan-duoc-tiep", "label": "Số lượt công dân được tiếp"},
        {
            "code": "khieu-nai-da-giai-quyet",
            "label": "Khiếu nại đã giải quyết",
            "kind": "ratio",
            "required": False,
        },
        {
            "code": "mo-hinh-dan-van-kheo",
            "label": "Mô hình Dân vận khéo",
            "kind": "breakdown",
            "categories": CATEGORIES,
            "required": False,
        },
        {"code": "ghi-chu", "label": "Ghi chú", "kind": "text", "required": False},
    )
)
MODELS: dict[str, type[BaseModel]] = {
    "submit_report": SubmitReport,
    "request_extension": ExtensionRequest,
    "decide_extension": ExtensionDecision,
    "waive": Waiver,
}

INTERNAL_TEXT = re.compile(
    r"Traceback|object has no attribute|NoneType|object at 0x|is not subscriptable"
    r"|is not iterable|unhashable type|KeyError|IndexError|\w\(\) (takes|missing|got) "
)
"""Python's view of the worker, which means nothing to an officer."""
UNCLEAN_TEXT = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\u2028\u2029\ufeff]"
)
"""Control, bidirectional and invisible characters: a refusal quotes what was sent, escaped."""
UNHANDLED_COMMAND = WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND


# --------------------------------------------------------------------------------------------
# Strategies: JSON-ish values


def _actor(officer_id: str, agency: str, *roles: OfficerRole) -> dict[str, object]:
    return {
        "officer_id": officer_id,
        "tenant": "quang-binh",
        "agency": agency,
        "roles": [r.value for r in roles],
    }


def _officer(agency: str, role: OfficerRole) -> dict[str, object]:
    officer = next(o for o in DIRECTORY.officers if o.agency == agency and role in o.roles)
    return _actor(officer.id, agency, *officer.roles)


STP_FOCAL = _officer("STP", OfficerRole.FOCAL_POINT)
STP_HEAD = _officer("STP", OfficerRole.HEAD)
SNV_FOCAL = _officer("SNV", OfficerRole.FOCAL_POINT)
SNV_HEAD = _officer("SNV", OfficerRole.HEAD)
ADMIN = _officer("SNV", OfficerRole.ADMIN)
LEADER = _officer("UBND_TINH", OfficerRole.PROVINCIAL_LEADERSHIP)
OTHER = _officer("UBND_LE_THUY", OfficerRole.FOCAL_POINT)
KNOWN_ACTORS = [_actor(o.id, o.agency, *o.roles) for o in DIRECTORY.officers]

NASTY_TEXT = st.sampled_from(
    [
        " ",
        "\r\n",
        "dòng 1\r\ndòng 2\rdòng 3\n",
        "\x00",
        "a\x00b",
        "\x07\x08\x1b[2J\x7f",
        "\u202egnp.exe\u202c",
        "\u200b",
        "\u200d\u2060\ufeff",
        "\u0085\u2028\u2029",
        "e\u0301 D\u0300a\u0303",
        "Đã tiếp 1.901 lượt công dân, đối thoại với Nhân dân.",
        "😀👨‍👩‍👧",
        "%s %d %n {0} {summary} ${HOME}",
        "<script>alert(1)</script>&amp;",
        "'; DROP TABLE submissions; --",
        '=HYPERLINK("x")',
        "\\u0000 \\n",
        "Subject: x\r\nBcc: a@example.org",
    ]
)
SIZES = [1999, 2000, 2001, 5000, 5001, 19_999, 20_000, 20_001]
UNITS = ["x", "ệ", "😀", "\r\n", "\u200b"]
LONG_TEXT = st.builds(lambda unit, n: unit * n, st.sampled_from(UNITS), st.sampled_from(SIZES))
HUGE_TEXT = st.builds(lambda unit: unit * 100_000, st.sampled_from(UNITS))
TEXT = st.one_of(st.text(max_size=30), NASTY_TEXT, LONG_TEXT, HUGE_TEXT)
SHORT_TEXT = st.one_of(st.text(max_size=30), NASTY_TEXT)
KEYS = st.one_of(st.text(max_size=12), st.sampled_from(["", "__class__", "actor", "$ref"]))
HUGE_INTS = st.sampled_from(
    [2**31, 2**53 + 1, 2**63, 2**64, -(2**63) - 1, 10**30, -(10**30), 10**4000, -(10**4000)]
)
"""Up to 4,001 digits: Python refuses to print integers of more than 4,300."""
INTS = st.one_of(st.integers(), HUGE_INTS)
ZONES = st.sampled_from(
    [
        UTC,
        timezone(timedelta(hours=14)),
        timezone(-timedelta(hours=14)),
        timezone(timedelta(hours=7)),
        timezone(timedelta(hours=5, minutes=45)),
        ZoneInfo("Asia/Ho_Chi_Minh"),
    ]
)
AWARE = st.datetimes(timezones=ZONES)
DATE_TEXT = st.sampled_from(
    [
        "",
        "2025-02-30",
        "2025-13-01",
        "0000-01-01",
        "10000-01-01",
        "25/12/2025",
        "today",
        "2025-06-01T00:00:00",
        "2025-06-01T10:00:00+07:00",
        "9999-12-31T23:59:59.999999-14:00",
        "0001-01-01T00:00:00+14:00",
    ]
)
SCALARS = st.one_of(st.none(), st.booleans(), INTS, st.floats(), SHORT_TEXT, LONG_TEXT, DATE_TEXT)
JUNK: st.SearchStrategy[object] = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(KEYS, children, max_size=3)
    ),
    max_leaves=6,
)
AGENCIES = st.one_of(
    st.sampled_from([a.code for a in DIRECTORY.agencies]),
    st.sampled_from(["stp", "STP ", " STP", "STP\u200b", "ＳＴＰ", "SNV\n", "", "ADMIN"]),
    TEXT,
)
ROLES = st.one_of(
    st.sampled_from([r.value for r in OfficerRole]),
    st.sampled_from(["ADMIN", "admin ", "root", "superuser", "aggregator", ""]),
    TEXT,
)
FUZZED_ACTORS = st.fixed_dictionaries(
    {
        "officer_id": TEXT,
        "tenant": st.sampled_from(["quang-binh", "nghe-an"]),
        "agency": AGENCIES,
        "roles": st.lists(ROLES, max_size=3),
    }
)
ADMINS = st.one_of(
    st.just(ADMIN),
    st.builds(
        lambda officer_id, agency: {
            "officer_id": officer_id,
            "tenant": "quang-binh",
            "agency": agency,
            "roles": ["admin"],
        },
        TEXT,
        AGENCIES,
    ),
)
ANYBODY = st.one_of(st.sampled_from(KNOWN_ACTORS), FUZZED_ACTORS)


def fits(limit: int) -> st.SearchStrategy[str]:
    return TEXT.filter(lambda s: 1 <= len(s) <= limit)


@dataclass(frozen=True)
class DaysAfterDue:
    """A date relative to the task's due date when the update is sent (extension requests)."""

    days: int


Field = tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]
"""A payload field: (values the specification accepts, values it may refuse)."""


def payloads(
    required: dict[str, Field], optional: dict[str, Field] | None = None
) -> st.SearchStrategy[dict[str, object]]:
    """Payload objects: fully valid ones, and ones where each field may be missing, invalid or
    anything at all, with now and then an unknown field."""
    optional = optional or {}

    @st.composite
    def valid(draw: st.DrawFn) -> dict[str, object]:
        payload = {name: draw(good) for name, (good, _) in required.items()}
        for name, (good, _) in optional.items():
            if draw(st.booleans()):
                payload[name] = draw(good)
        return payload

    @st.composite
    def mixed(draw: st.DrawFn) -> dict[str, object]:
        payload: dict[str, object] = {}
        for name, (good, bad) in (required | optional).items():
            presence = draw(st.integers(0, 9))
            if presence == 9 or (name in optional and presence >= 5):
                continue
            payload[name] = draw(st.one_of(good, good, bad, JUNK))
        if draw(st.integers(0, 9)) == 9:
            payload[draw(KEYS)] = draw(JUNK)
        return payload

    return st.one_of(valid(), mixed())


# --------------------------------------------------------------------------------------------
# Strategies: the four payloads

GOOD_INDICATORS = st.fixed_dictionaries(
    {"cong-dan-duoc-tiep": st.one_of(st.integers(0, 10**6), st.sampled_from([0, 2**63, 10**4000]))},
    optional={
        "khieu-nai-da-giai-quyet": st.integers(0, 100).flatmap(
            lambda total: st.fixed_dictionaries(
                {"done": st.integers(0, total), "total": st.just(total)}
            )
        ),
        "mo-hinh-dan-van-kheo": st.dictionaries(
            st.sampled_from(CATEGORIES), st.integers(0, 1000), max_size=2
        ),
        "ghi-chu": TEXT.filter(lambda s: len(s) <= 5000),
    },
)
SOME_COUNT = {"cong-dan-duoc-tiep": st.integers(0, 5)}
BAD_INDICATORS = st.one_of(
    st.just({}),
    st.fixed_dictionaries(
        {"cong-dan-duoc-tiep": st.one_of(INTS, st.floats(), SHORT_TEXT, st.booleans(), JUNK)}
    ),
    st.fixed_dictionaries(SOME_COUNT | {"so-lieu-la": JUNK}),
    st.fixed_dictionaries(
        SOME_COUNT
        | {
            "khieu-nai-da-giai-quyet": st.one_of(
                st.fixed_dictionaries({"done": INTS, "total": INTS}), JUNK
            )
        }
    ),
    st.fixed_dictionaries(
        SOME_COUNT
        | {
            "mo-hinh-dan-van-kheo": st.one_of(
                st.dictionaries(st.sampled_from([*CATEGORIES, "Khác", "kinh tế"]), INTS),
                # Not NFC, or with a trailing space: not the category as written.
                st.dictionaries(
                    st.sampled_from(["Kinh te\u0302\u0301", "Kinh tế "]), st.integers(0, 3)
                ),
                JUNK,
            )
        }
    ),
    st.fixed_dictionaries(SOME_COUNT | {"ghi-chu": st.one_of(LONG_TEXT, HUGE_TEXT, JUNK)}),
    st.dictionaries(KEYS, JUNK, max_size=3),
)

REPORTS = payloads(
    {
        "actor": (st.one_of(st.sampled_from([STP_FOCAL, STP_HEAD]), ADMINS), ANYBODY),
        "summary": (fits(20_000), TEXT),
        "indicators": (GOOD_INDICATORS, BAD_INDICATORS),
    },
    {
        "attachments": (
            st.lists(
                st.sampled_from(
                    [
                        "https://vanban.quangbinh.example/2025/bc-6t.pdf",
                        "sha256:" + "0123456789abcdef" * 4,
                        "Báo cáo 6 tháng.pdf",
                    ]
                ),
                max_size=20,
            ),
            st.one_of(
                st.lists(st.just("https://vanban.example/bc.pdf"), min_size=21, max_size=30),
                st.lists(SHORT_TEXT, min_size=1, max_size=3),
                st.lists(st.just("javascript:alert(1)"), min_size=1, max_size=2),
            ),
        ),
    },
)
EXTENSION_REQUESTS = payloads(
    {
        "actor": (st.one_of(st.sampled_from([STP_FOCAL, STP_HEAD]), ADMINS), ANYBODY),
        "new_due": (
            st.integers(1, EXTENSION_ROOM.days + 1).map(DaysAfterDue),
            st.one_of(
                st.integers(-400, EXTENSION_ROOM.days + 400).map(DaysAfterDue),
                st.dates(),
                DATE_TEXT,
            ),
        ),
        "reason": (fits(2000), TEXT),
    }
)
EXTENSION_DECISIONS = payloads(
    {
        "actor": (st.sampled_from([SNV_HEAD, LEADER]), ANYBODY),
        "approve": (
            st.booleans(),
            st.sampled_from(["yes", "no", "true", "0", 1, 0, 2, "maybe", None, [], {}]),
        ),
    },
    {"note": (st.one_of(st.none(), fits(2000)), TEXT)},
)
WAIVERS = payloads({"actor": (ADMINS, ANYBODY), "reason": (fits(2000), TEXT)})


class Call:
    """The arguments of one update call, as the client sends them."""

    def __init__(self, args: tuple[object, ...]) -> None:
        self.args = args

    def __repr__(self) -> str:
        return f"Call(({''.join(_literal(a) + ', ' for a in self.args)}))"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


def _literal(value: object) -> str:
    """Python source for `value`, with long repeated text written as a product."""
    if isinstance(value, str) and len(value) > 120:
        for size in range(1, 5):
            if value[:size] * (len(value) // size) == value:
                return f"{value[:size]!r} * {len(value) // size}"
        return f"{value[:60]!r} + ... ({len(value)} characters)"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return repr(value)


def calls(payload: st.SearchStrategy[dict[str, object]]) -> st.SearchStrategy[Call]:
    """Mostly one payload object; sometimes any JSON value, `None` or bytes; rarely no argument
    or two."""
    one = st.one_of(payload, payload, payload, payload, JUNK, st.none(), st.binary(max_size=20))

    @st.composite
    def build(draw: st.DrawFn) -> Call:
        arity = draw(st.integers(0, 19))
        if arity == 18:
            return Call(())
        if arity == 19:
            return Call((draw(one), draw(one)))
        return Call((draw(one),))

    return build()


ANY_UPDATE = st.one_of(
    st.tuples(st.just("submit_report"), calls(REPORTS)),
    st.tuples(st.just("request_extension"), calls(EXTENSION_REQUESTS)),
    st.tuples(st.just("decide_extension"), calls(EXTENSION_DECISIONS)),
    st.tuples(st.just("waive"), calls(WAIVERS)),
)


# --------------------------------------------------------------------------------------------
# What the task must answer


@dataclass(frozen=True)
class Expected:
    accept: bool
    because: str
    names: tuple[str, ...] = ()
    """A refusal must contain one of these: the field, the rule, the payload."""

    @property
    def by_rule(self) -> bool:
        """Refused by a rule of the task (state, actor, indicators), not by the payload's
        shape: the answer depends on the task's state."""
        return self.names in (("rule:",), ("indicator",)) or self.accept


def _resolve(value: object, due: date) -> object:
    if isinstance(value, DaysAfterDue):
        return (due + timedelta(days=value.days)).isoformat()
    if isinstance(value, dict):
        return {k: _resolve(v, due) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, due) for v in value]
    return value


def _allowed(actor: Actor, agency: str) -> bool:
    """Within the task's tenant (the harness's task is Quảng Bình's), admins and the agency."""
    return actor.tenant == "quang-binh" and (actor.is_admin or actor.agency == agency)


def _may_decide(actor: Actor, requester: Actor) -> bool:
    """The default approvers: the recipient's head or deputy, or the provincial leadership;
    never the requester nor an officer of the owing agency."""
    if actor.officer_id == requester.officer_id or actor.agency == TASK_AGENCY:
        return False
    head = OfficerRole.HEAD in actor.roles or OfficerRole.DEPUTY_HEAD in actor.roles
    return (head and actor.agency == AGGREGATOR) or (
        OfficerRole.PROVINCIAL_LEADERSHIP in actor.roles
    )


def _indicators_valid(values: dict[str, IndicatorValue]) -> bool:
    if not set(values) <= {i.code for i in INDICATORS}:
        return False
    for indicator in INDICATORS:
        value = values.get(indicator.code)
        if value is None:
            if indicator.required:
                return False
            continue
        match indicator.kind:
            case IndicatorKind.COUNT:
                ok = isinstance(value, int) and value >= 0
            case IndicatorKind.RATIO:
                ok = isinstance(value, Ratio) and value.done <= value.total
            case IndicatorKind.BREAKDOWN:
                ok = (
                    isinstance(value, dict)
                    and set(value) <= set(CATEGORIES)
                    and all(n >= 0 for n in value.values())
                )
            case IndicatorKind.TEXT:
                ok = isinstance(value, str) and len(value) <= 5000
        if not ok:
            return False
    return True


def expect(
    update: str, args: Sequence[object], status: TaskStatus, period_end: date
) -> tuple[Expected, BaseModel | None]:
    """The answer the specification asks for: the payload as the worker's converter decodes it,
    then the rules of the update for the task's current state."""
    model_type = MODELS[update]
    payload_names = (model_type.__name__, "object", "payload")
    if len(args) != 1:
        return Expected(False, f"{len(args)} arguments", (model_type.__name__, "argument")), None
    value = args[0]
    if value is None or isinstance(value, bytes):
        return Expected(False, f"{type(value).__name__} instead of an object", payload_names), None
    try:
        model = model_type.model_validate_json(to_json(value))
    except ValidationError as error:
        # A key the sender made up is quoted in ASCII in the refusal (never raw): look for it so.
        fields = {
            p if re.fullmatch(r"[A-Za-z0-9_-]{1,40}", p) else ascii(p[:40])
            for e in error.errors()
            for p in e["loc"]
            if isinstance(p, str)
        }
        return Expected(False, "invalid payload", tuple(sorted(fields)) or payload_names), None
    rule = ("rule:",)
    if status.closed or not status.state.is_open:
        return Expected(False, "task closed", rule), model
    match model:
        case SubmitReport():
            if not _allowed(model.actor, TASK_AGENCY):
                return Expected(False, "actor may not submit", rule), model
            if not _indicators_valid(model.indicators):
                return Expected(False, "invalid indicators", ("indicator",)), model
        case ExtensionRequest():
            assert status.due_at is not None
            if not _allowed(model.actor, TASK_AGENCY):
                return Expected(False, "actor may not request", rule), model
            if status.pending_extension is not None:
                return Expected(False, "a request is waiting", rule), model
            if not status.due_at.date() < model.new_due <= period_end + timedelta(days=1):
                return Expected(False, "new date outside the window", rule), model
        case ExtensionDecision():
            if status.pending_extension is None:
                return Expected(False, "no request waiting", rule), model
            if not _may_decide(model.actor, status.pending_extension.actor):
                return Expected(False, "actor may not decide", rule), model
        case Waiver():
            if not (model.actor.is_admin and model.actor.tenant == "quang-binh"):
                return Expected(False, "actor may not waive", rule), model
    return Expected(True, "valid"), model


def refusal_text(error: WorkflowUpdateFailedError) -> str:
    """What the officer reads: the CLI prints the cause's message."""
    cause = error.cause
    return cause.message if isinstance(cause, FailureError) else str(cause)


def assert_clear_refusal(text: str, expected: Expected) -> None:
    assert text.strip(), "the refusal has an empty message"
    assert INTERNAL_TEXT.search(text) is None, (
        f"the refusal shows the worker's internals: {text[:500]!r}"
    )
    assert any(name in text for name in expected.names), (
        f"the refusal ({expected.because}) names none of {list(expected.names)}: {text[:500]!r}"
    )
    assert len(text) <= MAX_REFUSAL, f"the refusal has {len(text)} characters: {text[:300]!r}…"
    unclean = UNCLEAN_TEXT.search(text)
    assert unclean is None, (
        f"the refusal carries {unclean.group()!r} from the payload unescaped: {text[:300]!r}"
    )


def _view(status: TaskStatus) -> tuple[object, ...]:
    """What an update changes; a refused update must leave it as it was."""
    return (
        status.state,
        status.due_at,
        status.decisions,
        status.pending_extension,
        status.submitted_at,
        status.closed,
    )


def assert_accepted_state(
    model: BaseModel, result: UpdateResult, before: TaskStatus, after: TaskStatus
) -> None:
    assert result.task_id == before.task.task_id
    assert result.message.strip()
    assert after.decisions[: len(before.decisions)] == before.decisions
    assert len(after.decisions) == len(before.decisions) + 1, [d.kind for d in after.decisions]
    last = after.decisions[-1]
    match model:
        case SubmitReport():
            # Due in months, whatever `sent_at` claims: on time.
            assert result.state is after.state is TaskState.DONE_ON_TIME
            assert after.submitted_at is not None
            assert (last.kind, last.actor) == ("submitted", model.actor.officer_id)
            assert after.due_at == before.due_at
        case ExtensionRequest():
            assert result.state is after.state is TaskState.PENDING
            assert after.pending_extension == model
            assert (last.kind, last.actor) == ("extension_requested", model.actor.officer_id)
            assert after.due_at == before.due_at
        case ExtensionDecision():
            assert before.pending_extension is not None
            assert after.pending_extension is None
            verdict = "approved" if model.approve else "rejected"
            assert (last.kind, last.actor) == (f"extension_{verdict}", model.actor.officer_id)
            new_due = midnight(before.pending_extension.new_due)
            assert after.due_at == (new_due if model.approve else before.due_at)
            assert result.state is after.state is TaskState.PENDING
        case Waiver():
            assert result.state is after.state is TaskState.WAIVED
            assert (last.kind, last.actor, last.detail) == (
                "waived",
                model.actor.officer_id,
                model.reason,
            )
    assert result.due_at == after.due_at


# --------------------------------------------------------------------------------------------
# The bench: a real worker, one open task per update kind


@dataclass
class FuzzedTask:
    handle: WorkflowHandle[ObligationWorkflow, TaskOutcome]
    period_end: date
    env: WorkflowEnvironment
    updates: int = 0
    accepted: int = 0
    """Updates this module saw succeed on the task (fuzzed and set-up ones)."""
    closed: bool = False
    concurrent: bool = False
    """Received updates concurrently: see `health_problems`."""


@dataclass
class Outcome:
    update: str
    expected: Expected
    model: BaseModel | None
    result: UpdateResult | None = None
    refusal: str | None = None


class Bench:
    def __init__(self, h: Harness, now: datetime) -> None:
        self.h = h
        self.due = midnight(now.date() + timedelta(days=200))
        self.tasks: list[FuzzedTask] = []
        self._open: dict[str, FuzzedTask] = {}

    async def start(self, label: str) -> FuzzedTask:
        period_end = self.due.date() + EXTENSION_ROOM
        input = obligation_input(
            due_at=self.due,
            agency=TASK_AGENCY,
            indicators=INDICATORS,
            period_end=period_end,
            task_suffix=f"-fuzz-{label}-{len(self.tasks)}",
        )
        task = FuzzedTask(await self.h.start_obligation(input), period_end, self.h.env)
        self.tasks.append(task)
        return task

    async def task_for(self, update: str) -> FuzzedTask:
        """The open task for fuzzing `update`, in the state the update needs: no
        extension request waiting (to request one), one waiting (to decide it)."""
        task = self._open.get(update)
        if task is None or task.closed or task.updates >= UPDATES_PER_TASK:
            task = self._open[update] = await self.start(update)
        status = await task.handle.query(ObligationWorkflow.status)
        if update == "request_extension" and status.pending_extension is not None:
            decision = ExtensionDecision(actor=Actor.model_validate(SNV_HEAD), approve=False)
            await self.setup(task, "decide_extension", decision)
        if update == "decide_extension" and status.pending_extension is None:
            await self.request_extension(task, status)
        return task

    async def request_extension(self, task: FuzzedTask, status: TaskStatus) -> None:
        assert status.due_at is not None
        request = ExtensionRequest(
            actor=Actor.model_validate(STP_FOCAL),
            new_due=status.due_at.date() + timedelta(days=1),
            reason="Chờ số liệu của các xã",
        )
        await self.setup(task, "request_extension", request)

    async def setup(self, task: FuzzedTask, update: str, payload: BaseModel) -> None:
        payload = await sign(self.h.env, task.handle, update, payload)
        async with asyncio.timeout(UPDATE_TIMEOUT):
            await task.handle.execute_update(update, payload, result_type=UpdateResult)
        task.accepted += 1

    async def exercise(self, update: str, call: Call) -> None:
        """Send one fuzzed call to the task of `update`; check the answer, the task's state
        and its health."""
        task = await self.task_for(update)
        try:
            before = await task.handle.query(ObligationWorkflow.status)
            outcome = await send(task, update, call, before)
            after = await task.handle.query(ObligationWorkflow.status)
            if outcome.refusal is not None:
                assert not outcome.expected.accept, (
                    f"a valid {update} was refused: {outcome.refusal[:500]!r}"
                )
                assert_clear_refusal(outcome.refusal, outcome.expected)
                assert _view(after) == _view(before), "a refused update changed the task"
            else:
                assert outcome.expected.accept, (
                    f"{update} accepted although {outcome.expected.because}"
                )
                assert outcome.model is not None and outcome.result is not None
                assert_accepted_state(outcome.model, outcome.result, before, after)
            await settle(task, after)
            assert not await health_problems(task)
        except BaseException:
            self._open.pop(update, None)  # a task in doubt is fuzzed no more
            raise


async def send(task: FuzzedTask, update: str, call: Call, before: TaskStatus) -> Outcome:
    """One update call, answered within UPDATE_TIMEOUT or the test fails."""
    assert before.due_at is not None
    args = tuple(_resolve(a, before.due_at.date()) for a in call.args)
    expected, model = expect(update, args, before, task.period_end)
    if model is not None:
        # A payload the worker can decode is signed, as Accord's entry point signs it (the
        # refusals of unsigned, altered or expired claims: test_identity.py).
        model = await sign(task.env, task.handle, update, model)
        args = (model.model_dump(mode="json"),)
    outcome = Outcome(update, expected, model)
    task.updates += 1
    try:
        async with asyncio.timeout(UPDATE_TIMEOUT):
            result = await task.handle.execute_update(
                update, args=list(args), result_type=UpdateResult
            )
    except WorkflowUpdateFailedError as error:
        outcome.refusal = refusal_text(error)
    except TimeoutError:
        problems = await health_problems(task)
        pytest.fail(f"{update} {call!r} had no answer in {UPDATE_TIMEOUT} s; {problems}")
    else:
        assert isinstance(result, UpdateResult), result
        outcome.result = result
        task.accepted += 1
    return outcome


async def settle(task: FuzzedTask, status: TaskStatus) -> None:
    """A task closed by an update completes by itself (receipt, audit) in time."""
    if status.state.is_open:
        return
    task.closed = True
    async with asyncio.timeout(CLOSE_TIMEOUT):
        # Polling: waiting on the result would let the test server skip time.
        while (await task.handle.describe()).status is WorkflowExecutionStatus.RUNNING:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def health_problems(task: FuzzedTask) -> list[str]:
    """Everything wrong with a task: failed workflow tasks, a run that did not end normally,
    activities stuck retrying, accepted updates the module did not see answered, a dead
    status query."""
    handle = task.handle
    problems: list[str] = []
    accepted = 0
    for event in (await handle.fetch_history()).events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
            failed = event.workflow_task_failed_event_attributes
            # The server refuses to let a run complete while an update that arrived meanwhile
            # waits; the worker runs the task again with it. Only concurrent updates cause it.
            if task.concurrent and failed.cause == UNHANDLED_COMMAND:
                continue
            cause = WorkflowTaskFailedCause.Name(failed.cause)
            problems.append(f"workflow task failed ({cause}): {failed.failure.message}")
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            accepted += 1
    if accepted != task.accepted:
        problems.append(f"{accepted} updates accepted in history, {task.accepted} answered")
    description = await handle.describe()
    if description.status not in (
        WorkflowExecutionStatus.RUNNING,
        WorkflowExecutionStatus.COMPLETED,
    ):
        problems.append(f"workflow {description.status}")
    for activity in description.raw_description.pending_activities:
        if activity.attempt > 1:
            problems.append(
                f"activity {activity.activity_type.name} retrying (attempt {activity.attempt}): "
                f"{activity.last_failure.message}"
            )
    try:
        await handle.query(ObligationWorkflow.status)
    except Exception as error:
        problems.append(f"status query failed: {error!r}")
    return [f"{handle.id}: {p}" for p in problems]


@pytest.fixture(scope="module")
async def bench(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Bench]:
    async with harness(tmp_path_factory.mktemp("update-fuzz")) as h:
        yield Bench(h, await local_now(h.env))


# --------------------------------------------------------------------------------------------
# Properties: the first `@example`s of each test are accepted updates, the others regressions.


def _report(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "actor": STP_FOCAL,
        "summary": "Đã tiếp 1.901 lượt công dân.",
        "indicators": {"cong-dan-duoc-tiep": 1901},
    }
    return base | changes


LE_THUY_ECHO = {
    "officer_id": "dau-moi\r\n\x1b[2J\u202e",
    "tenant": "quang-binh",
    "agency": "UBND_LE_THUY",
    "roles": [],
}
"""An officer ID a refusal quotes."""
LONG_ID = {
    "officer_id": "x" * 20_000,
    "tenant": "quang-binh",
    "agency": "UBND_LE_THUY",
    "roles": ["focal_point"],
}


@FUZZ
@given(call=calls(REPORTS))
@example(call=Call((_report(),)))
# Regressions: "'NoneType' object has no attribute 'actor'", the same with 'bytes',
# "ObligationWorkflow._validate_submit() missing 1 required positional argument: 'report'",
# "... takes 2 positional arguments but 3 were given", "Failed decoding arguments" (no field),
# and the officer ID quoted raw: control characters, then 20,000 characters of it.
@example(call=Call((None,)))
@example(call=Call((b"bao-cao",)))
@example(call=Call(()))
@example(call=Call((_report(), _report())))
@example(call=Call((_report(summary=""),)))
@example(call=Call((_report(actor=LE_THUY_ECHO),)))
@example(call=Call((_report(actor=LONG_ID),)))
async def test_submit_report_answers_every_payload(bench: Bench, call: Call) -> None:
    await bench.exercise("submit_report", call)


def _request(**changes: object) -> dict[str, object]:
    base = {"actor": STP_FOCAL, "new_due": DaysAfterDue(10), "reason": "Chờ số liệu của các xã"}
    return base | changes


@FUZZ
@given(call=calls(EXTENSION_REQUESTS))
@example(call=Call((_request(),)))
# Regressions: "'NoneType' object has no attribute 'actor'", "Failed decoding arguments" (no
# field), the officer ID quoted raw.
@example(call=Call((None,)))
@example(call=Call((_request(new_due="2025-02-30"),)))
@example(call=Call((_request(actor=LE_THUY_ECHO),)))
async def test_request_extension_answers_every_payload(bench: Bench, call: Call) -> None:
    await bench.exercise("request_extension", call)


@FUZZ
@given(call=calls(EXTENSION_DECISIONS))
@example(call=Call(({"actor": SNV_HEAD, "approve": True, "note": "Đồng ý"},)))
# Regressions: "'NoneType' object has no attribute 'actor'", "Failed decoding arguments".
@example(call=Call((None,)))
@example(call=Call(({"actor": SNV_FOCAL, "approve": "maybe"},)))
async def test_decide_extension_answers_every_payload(bench: Bench, call: Call) -> None:
    await bench.exercise("decide_extension", call)


@FUZZ
@given(call=calls(WAIVERS))
@example(call=Call(({"actor": ADMIN, "reason": "Đơn vị đã giải thể"},)))
# Regressions: "'NoneType' object has no attribute 'actor'", "Failed decoding arguments".
@example(call=Call((None,)))
@example(call=Call(({"actor": ADMIN, "reason": "x" * 2001},)))
# Regression (of the test): a made-up key is named in the refusal quoted, '\x1f', not raw.
@example(call=Call(({"actor": ADMIN, "reason": "Đã giải thể", "\x1f": 0},)))
async def test_waive_answers_every_payload(bench: Bench, call: Call) -> None:
    await bench.exercise("waive", call)


@settings(FUZZ, max_examples=20)
@given(burst=st.lists(ANY_UPDATE, min_size=2, max_size=6))
@example(
    burst=[
        ("waive", Call(({"actor": ADMIN, "reason": "Đơn vị đã giải thể"},))),
        ("submit_report", Call((_report(),))),
        ("decide_extension", Call(({"actor": SNV_HEAD, "approve": False},))),
    ]
)
# Regression: "'NoneType' object has no attribute 'actor'".
@example(burst=[("submit_report", Call((None,))), ("request_extension", Call((None,)))])
async def test_concurrent_updates_leave_a_consistent_task(
    bench: Bench, burst: list[tuple[str, Call]]
) -> None:
    """Several updates at once (a double click, two officers): each answers, at most one
    closes the task, and the task records exactly the accepted ones."""
    task = await bench.start("burst")
    task.concurrent = True
    await bench.request_extension(task, await task.handle.query(ObligationWorkflow.status))
    before = await task.handle.query(ObligationWorkflow.status)
    outcomes = await asyncio.gather(*(send(task, u, c, before) for u, c in burst))
    for outcome in outcomes:
        expected = outcome.expected
        if outcome.refusal is None:
            assert expected.accept or expected.by_rule, (
                f"{outcome.update} accepted although {expected.because}"
            )
        elif expected.by_rule:
            # Refused by a rule which another update of the burst may have made apply.
            assert_clear_refusal(outcome.refusal, Expected(False, "rule", ("rule:", "indicator")))
        else:
            # A closed task or a decided request may be named before the payload's fault.
            either = Expected(False, expected.because, (*expected.names, "rule:"))
            assert_clear_refusal(outcome.refusal, either)
    after = await task.handle.query(ObligationWorkflow.status)
    accepted = Counter(o.update for o in outcomes if o.result is not None)
    assert accepted["submit_report"] + accepted["waive"] <= 1, accepted
    # One request waits at the start: requests and decisions alternate from there.
    assert 0 <= accepted["decide_extension"] - accepted["request_extension"] <= 1, accepted
    kinds = Counter(d.kind for d in after.decisions[len(before.decisions) :])
    assert kinds["submitted"] == accepted["submit_report"]
    assert kinds["waived"] == accepted["waive"]
    assert kinds["extension_requested"] == accepted["request_extension"]
    assert kinds["extension_approved"] + kinds["extension_rejected"] == accepted["decide_extension"]
    assert after.state.is_open is not (accepted["submit_report"] + accepted["waive"] == 1)
    await settle(task, after)
    assert not await health_problems(task)


async def test_every_fuzzed_task_ends_healthy(bench: Bench) -> None:
    """After the batch: every task the module touched is running or completed normally, its
    history has no failed workflow task, and its status query answers."""
    if not bench.tasks:  # run alone: a short batch of its own
        await bench.exercise("waive", Call(({"actor": ADMIN, "reason": "Đã giải thể"},)))
    problems = [p for task in bench.tasks for p in await health_problems(task)]
    assert not problems, "\n".join(problems)
    for task in bench.tasks:
        status = await task.handle.query(ObligationWorkflow.status)
        if (await task.handle.describe()).status is WorkflowExecutionStatus.COMPLETED:
            outcome = await task.handle.result()
            assert outcome.state is status.state
            assert status.closed
        else:
            assert status.state.is_open
            assert not status.closed
