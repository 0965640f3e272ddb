"""The agreement schema: what an officer writes in an agreement or directory YAML file.

Every model forbids unknown keys so that a typo is an error, not a silently ignored setting.
Strings are NFC-normalised on the way in, so that Vietnamese text typed with combining
diacritics compares equal to the same text typed with precomposed letters.

Deadline convention. Vietnamese plans say "Trước ngày 15/5" ("before 15 May"). Accord reads
that as a **due instant of 15 May 00:00 in the agreement's time zone**: the last day to submit
is 14 May, and a report stamped on 15 May is late. Every dated obligation below follows this
convention (`before`, recurring `month`/`day`, and relative offsets all name the first day that
is already too late).

Pure data: no I/O (reading files is the loader's) and no import of the rest of the project.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, time, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)


def _nfc(value: Any) -> Any:
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value).strip()
    return value


Text = Annotated[str, BeforeValidator(_nfc), StringConstraints(min_length=1, max_length=20_000)]
"""Free Vietnamese text, NFC-normalised."""

Name = Annotated[str, BeforeValidator(_nfc), StringConstraints(min_length=1, max_length=300)]

AgencyCode = Annotated[
    str,
    BeforeValidator(_nfc),
    StringConstraints(pattern=r"^[A-Z][A-Z0-9_]{0,39}$"),
]
"""Agency code: upper-case ASCII, digits and underscores, e.g. `SNV`, `UBND_LE_THUY`."""

GroupCode = Annotated[
    str,
    BeforeValidator(_nfc),
    StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$"),
]
"""Agency group code: lower-case ASCII, e.g. `so_ban_nganh`, `ubnd_cap_huyen`."""

Slug = Annotated[
    str,
    BeforeValidator(_nfc),
    StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,59}$"),
]
"""Readable identifier used in task IDs: lower-case ASCII letters, digits and hyphens."""

ItemNumber = Annotated[
    str,
    BeforeValidator(lambda v: str(v) if isinstance(v, int) and not isinstance(v, bool) else v),
    BeforeValidator(_nfc),
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9.]{0,19}$"),
]
"""Content item number as printed in the document, e.g. `1`, `II.3`, `III.7`."""


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


# --------------------------------------------------------------------------------------------
# Durations


_OFFSET_RE = re.compile(r"^\s*(\d{1,5})\s*(s|m|h|d|wd)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "wd": 86_400}


class OffsetUnit(StrEnum):
    SECONDS = "s"
    MINUTES = "m"
    HOURS = "h"
    DAYS = "d"
    WORKING_DAYS = "wd"


class Offset(Model):
    """A distance from a due instant, written in YAML as `7d`, `5wd`, `12h` or `30m`."""

    amount: int = Field(ge=0, le=99_999, description="How many units.")
    unit: OffsetUnit = Field(description="s, m, h, d (calendar days) or wd (working days).")

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        if isinstance(value, str):
            match = _OFFSET_RE.match(value)
            if not match:
                raise ValueError(
                    f"offset {value!r} is not of the form <number><unit> with unit "
                    "s (seconds), m (minutes), h (hours), d (calendar days) or wd (working days), "
                    "e.g. '7d'"
                )
            return {"amount": int(match.group(1)), "unit": match.group(2)}
        return value

    @property
    def seconds(self) -> int:
        """Length in seconds; a working day counts as at least one calendar day."""
        return self.amount * _UNIT_SECONDS[self.unit.value]

    @property
    def duration(self) -> timedelta:
        return timedelta(seconds=self.seconds)

    def __str__(self) -> str:
        return f"{self.amount}{self.unit.value}"


OffsetText = Annotated[
    Offset,
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^\s*\d{1,5}\s*(s|m|h|d|wd)\s*$"}),
]


# --------------------------------------------------------------------------------------------
# Reminders and escalation


class RecipientRole(StrEnum):
    """Who receives a reminder or an escalation step, resolved from the directory at send time."""

    FOCAL_POINT = "focal_point"
    """The owing agency's focal-point officer (đầu mối)."""
    HEAD_OF_AGENCY = "head_of_agency"
    """The head of the owing agency (thủ trưởng, người đứng đầu)."""
    AGGREGATOR = "aggregator"
    """The focal point of the agency the deliverable goes to (e.g. Sở Nội vụ)."""
    PROVINCIAL_LEADERSHIP = "provincial_leadership"
    """Officers with the provincial-leadership role (lãnh đạo UBND tỉnh)."""
    COPY = "copy"
    """The focal points of the agencies an obligation is copied to (`copy_to`, đồng gửi), for
    information. Added to every reminder, escalation step and receipt of such an obligation."""


class LeadershipOf(Model):
    """The leaders of one named body, e.g. `{leadership_of: UBND_TINH}`: its officers holding
    the `provincial_leadership` or `head` role. Unlike the bare `provincial_leadership` role,
    which reaches every provincial leader (People's Committee and Party committee alike), this
    reaches only that body's."""

    leadership_of: AgencyCode = Field(
        description=(
            "Agency whose leaders receive the notice, e.g. `UBND_TINH` (the issuing body) "
            "or `TINH_UY`; written in a `notify` list as `{leadership_of: UBND_TINH}`."
        )
    )

    def __str__(self) -> str:
        return f"leadership_of:{self.leadership_of}"


_AGENCY_CODE_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,39}$")


def _notify_target(value: Any) -> Any:
    """One error line for a wrong `notify` entry, instead of one per member of the union."""
    if isinstance(value, RecipientRole | LeadershipOf):
        return value
    if isinstance(value, str):
        try:
            return RecipientRole(_nfc(value))
        except ValueError:
            *first, last = (repr(r.value) for r in RecipientRole)
            raise ValueError(
                f"{value!r} is not one of {', '.join(first)} or {last}, nor {{leadership_of: CODE}}"
            ) from None
    if isinstance(value, dict):
        if set(value) != {"leadership_of"}:
            keys = ", ".join(repr(k) for k in value)
            raise ValueError(
                f"expected {{leadership_of: CODE}}, e.g. {{leadership_of: UBND_TINH}}, got {keys}"
            )
        code = value["leadership_of"]
        if not isinstance(code, str) or not _AGENCY_CODE_RE.match(_nfc(code)):
            raise ValueError(
                f"leadership_of: {code!r} is not an agency code (upper-case, e.g. UBND_TINH)"
            )
        return LeadershipOf(leadership_of=_nfc(code))
    raise ValueError("expected a role, e.g. focal_point, or {leadership_of: CODE}")


NotifyTarget = Annotated[RecipientRole | LeadershipOf, BeforeValidator(_notify_target)]
"""An entry of a `notify` list: a role (`focal_point`, ...) or `{leadership_of: CODE}`."""


def notify_text(target: RecipientRole | LeadershipOf) -> str:
    """`focal_point`, or `leadership_of:UBND_TINH`, for messages and logs."""
    return target.value if isinstance(target, RecipientRole) else str(target)


class ReminderPolicy(Model):
    """Reminders sent before the due instant (đôn đốc)."""

    before: list[OffsetText] = Field(
        default_factory=list,
        max_length=10,
        description=(
            "Offsets before the due instant at which to remind, e.g. ['7d', '5wd', '3d', "
            "'1wd']: in any order, days and working days mixed; each is sent at its computed "
            "instant, and those that fall in the same sending window go out as one mail."
        ),
    )
    notify: list[NotifyTarget] = Field(
        default_factory=lambda: list[NotifyTarget]([RecipientRole.FOCAL_POINT]),
        min_length=1,
        description=(
            "Roles that receive each reminder, e.g. ['focal_point', 'head_of_agency'], or "
            "the leaders of a named body: [{leadership_of: UBND_TINH}]."
        ),
    )

    @field_validator("before")
    @classmethod
    def _distinct(cls, value: list[Offset]) -> list[Offset]:
        # `5d` and `5wd` are different offsets (a weekend in between sets them apart; when it
        # does not they share a sending window and go out once); `5d` written twice is a slip.
        seen: set[str] = set()
        for offset in value:
            if str(offset) in seen:
                raise ValueError(f"reminder offset {offset} is written twice")
            seen.add(str(offset))
        return value


class EscalationStep(Model):
    """One rung of the escalation ladder, counted from the due instant."""

    after: OffsetText = Field(description="Offset after the due instant, e.g. '1d', '5wd'.")
    notify: list[NotifyTarget] = Field(
        min_length=1,
        description=(
            "Roles that receive this escalation step, e.g. ['head_of_agency', "
            "'provincial_leadership'], or the leaders of a named body only: "
            "[{leadership_of: UBND_TINH}] (not the Party committee's)."
        ),
    )


class ExtensionApprover(StrEnum):
    """Who may decide an obligation's extension requests (never the officer who asked, and
    never an officer of an agency that owes the task)."""

    RECIPIENT_HEAD = "recipient_head"
    """The head or a deputy head of the agency the deliverable goes to (`recipient`)."""
    PROVINCIAL_LEADERSHIP = "provincial_leadership"
    """An officer with the provincial-leadership role (lãnh đạo UBND tỉnh)."""


DEFAULT_EXTENSION_APPROVERS = (
    ExtensionApprover.RECIPIENT_HEAD,
    ExtensionApprover.PROVINCIAL_LEADERSHIP,
)


class NotificationPolicy(Model):
    """Reminder policy and escalation ladder: agreement-wide defaults or per-obligation
    overrides."""

    reminders: ReminderPolicy | None = Field(
        default=None, description="Reminders before the due instant."
    )
    escalation: list[EscalationStep] | None = Field(
        default=None,
        max_length=10,
        description=(
            "Escalation ladder after the due instant, each step after the one above it, e.g. "
            "[{after: 3wd, notify: [head_of_agency]}, {after: 10wd, notify: "
            "[provincial_leadership]}]. Steps may mix d and wd ([5d, 4wd] is fine: 4 working "
            "days after a Friday end later than 5 days); the ladder is refused when a step "
            "falls before the one above it on one of the agreement's due dates."
        ),
    )


# --------------------------------------------------------------------------------------------
# Obligations


class Deliverable(StrEnum):
    REPORT = "report"
    PLAN = "plan"
    INSPECTION = "inspection"
    OTHER = "other"


class IndicatorKind(StrEnum):
    COUNT = "count"
    """A whole number, e.g. citizens received."""
    RATIO = "ratio"
    """Done out of total, e.g. complaints resolved 29 / 39."""
    BREAKDOWN = "breakdown"
    """Counts by category, e.g. "Dân vận khéo" models by field."""
    TEXT = "text"


class Indicator(Model):
    """A structured figure the report must carry."""

    code: Slug = Field(description="Identifier, e.g. `cong-dan-duoc-tiep`.")
    label: Name = Field(description="Vietnamese label shown to officers.")
    kind: IndicatorKind = Field(
        default=IndicatorKind.COUNT, description="count, ratio, breakdown or text."
    )
    categories: list[Name] | None = Field(
        default=None, description="For `breakdown`: the categories, in display order."
    )
    required: bool = Field(default=True, description="Whether a report must carry it.")
    unit: Name | None = Field(
        default=None, description="Unit shown next to the figure, e.g. `lượt`, `hồ sơ`."
    )
    help: str | None = Field(
        default=None,
        max_length=500,
        description="A line of guidance shown under the field (what to count, which source).",
    )

    @model_validator(mode="after")
    def _categories_only_for_breakdown(self) -> Indicator:
        if self.kind is IndicatorKind.BREAKDOWN and not self.categories:
            raise ValueError("a breakdown indicator needs `categories`")
        if self.kind is not IndicatorKind.BREAKDOWN and self.categories:
            raise ValueError("only a breakdown indicator has `categories`")
        return self


class Owners(Model):
    """Who owes the deliverable: named agencies and/or whole groups from the directory."""

    agencies: list[AgencyCode] = Field(default_factory=list, description="Agency codes.")
    groups: list[GroupCode] = Field(
        default_factory=list,
        description="Directory groups, e.g. `so_ban_nganh` (every department).",
    )
    excluding: list[AgencyCode] = Field(
        default_factory=list, description="Agencies removed from the groups above."
    )
    jointly: bool = Field(
        default=False,
        description=(
            "One deliverable owed jointly by all the owners: one task per period (ID segment "
            "'SNV+STP', codes in directory order), reminded to every owner's officers and "
            "closed by the first submission of any owner's officer, e.g. "
            "`owners: {agencies: [SNV, STP], jointly: true}`. Default false: one task per agency."
        ),
    )

    @model_validator(mode="after")
    def _not_empty(self) -> Owners:
        if not self.agencies and not self.groups:
            raise ValueError("name at least one agency or group")
        return self


def _time_of_day(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads an unquoted 17:00 as the sexagesimal number 1020.
        raise ValueError(
            f'{value} is not a time of day: write it in quotes as HH:MM, e.g. time: "17:00"'
        )
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", value)
        if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
            raise ValueError(f'{value!r} is not a time of day: write HH:MM, e.g. "17:00"')
        value = time(int(match.group(1)), int(match.group(2)))
    if isinstance(value, time) and value == time.min:
        raise ValueError(
            "00:00 is the first moment of the day, not a time of day: write `before:` "
            "without `time`"
        )
    return value


TimeOfDay = Annotated[
    time,
    BeforeValidator(_time_of_day),
    PlainSerializer(lambda t: t.strftime("%H:%M"), return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^\s*\d{1,2}:\d{2}\s*$"}),
]
"""A local time of day written "HH:MM" (quoted in YAML), e.g. "17:00"."""

_TIME_DESCRIPTION = (
    "Time of day of the deadline, local, quoted: 'trước 17 giờ ngày X' is `time: \"17:00\"` "
    "and makes the due instant X 17:00 (with `before` or `by` alike). If X is not a working "
    "day the deadline rule moves the day and keeps the time."
)


class FixedDue(Model):
    """One due date, written one of two ways:

    * `before: 2025-05-15` ("trước ngày 15/5"): due at 15 May 00:00, the last day is 14 May;
    * `by: 2025-06-30` ("chậm nhất ngày 30/6", "trước hoặc trong ngày 30/6"): 30 June is the
      last day, so the due instant is 1 July 00:00.

    With `time: "17:00"` the due instant is that time on the day named ("trước 17 giờ ngày X").
    """

    kind: Literal["fixed"] = Field(description="'fixed'.")
    before: date | None = Field(
        default=None,
        description="First day that is already late: 'trước ngày 15/5' is `before: 2025-05-15`.",
    )
    by: date | None = Field(
        default=None,
        description=(
            "Last day on time (inclusive): 'chậm nhất ngày 30/6' is `by: 2025-06-30`, due at "
            "1 July 00:00. Give `before` or `by`, not both."
        ),
    )
    time: TimeOfDay | None = Field(default=None, description=_TIME_DESCRIPTION)
    label: Slug | None = Field(
        default=None, description="Reporting-period label in task IDs; default: the year."
    )

    @model_validator(mode="after")
    def _one_day(self) -> FixedDue:
        if (self.before is None) == (self.by is None):
            raise ValueError(
                "give the day as `before: YYYY-MM-DD` (first late day) or `by: YYYY-MM-DD` "
                "(last day on time), one of the two"
            )
        return self

    @property
    def day(self) -> date:
        """The day the document names."""
        named = self.before or self.by
        assert named is not None
        return named


_LABEL_FIELDS = {"year": 2000, "quarter": 1, "month": 1, "day": 1}


def _check_label_template(value: str, allowed: tuple[str, ...]) -> str:
    names = ", ".join(f"{{{name}}}" for name in allowed)
    try:
        rendered = value.format(**{name: _LABEL_FIELDS[name] for name in allowed})
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"label template {value!r} may only use {names}") from exc
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,59}", rendered):
        raise ValueError(f"label {value!r} must render to lower-case letters, digits and hyphens")
    return value


class _NamedDays(Model):
    """What the rules that name a day of the month share: whether that day is the last day on
    time or the first late one, a time of day, the stretch the rule may produce dates in, and
    the period label template (`label`, declared by each rule with its own default)."""

    label: str
    inclusive: bool = Field(
        default=False,
        description=(
            "true: the day named is the last day on time ('chậm nhất ngày 25' is "
            "`day: 25, inclusive: true`, due at the 26th 00:00); false (default): it is the "
            "first late day ('trước ngày 25')."
        ),
    )
    time: TimeOfDay | None = Field(default=None, description=_TIME_DESCRIPTION)
    starting: date | None = Field(
        default=None, description="First date the rule may produce (default: period start)."
    )
    until: date | None = Field(
        default=None, description="Last date the rule may produce (default: period end)."
    )

    @field_validator("label")
    @classmethod
    def _label_template(cls, value: str) -> str:
        return _check_label_template(value, ("year", "quarter", "month", "day"))

    @model_validator(mode="after")
    def _inclusive_or_time(self) -> Self:
        if self.inclusive and self.time is not None:
            raise ValueError("`time` already makes the day named the last day: drop `inclusive`")
        return self


class RecurringDue(_NamedDays):
    """Due dates that repeat, expanded with a cron rule in the agreement's time zone.

    `month: 5, day: 15` is "before 15 May every year"; `month: "5,11"` gives two dates a year.
    `inclusive: true` makes the day named the last day ("chậm nhất ngày 15 hằng tháng").
    """

    kind: Literal["recurring"] = Field(description="'recurring'.")
    month: int | str = Field(description="Cron month field, e.g. 5 or '5,11'.")
    day: int | str = Field(description="Cron day-of-month field, e.g. 15.")
    label: str = Field(
        description=(
            "Reporting-period label template for task IDs, e.g. '{year}-6t' or "
            "'{year}-q{quarter}'. Placeholders: {year}, {quarter} (1-4), {month}, {day}, "
            "all of the day the rule names."
        ),
        max_length=60,
    )


MonthOfQuarter = Literal["first", "middle", "last"]
MONTHS_OF_QUARTER: dict[str, tuple[int, int, int, int]] = {
    "first": (1, 4, 7, 10),
    "middle": (2, 5, 8, 11),
    "last": (3, 6, 9, 12),
}
_SHORTEST_MONTH = {"first": 30, "middle": 28, "last": 30}


class QuarterlyDue(_NamedDays):
    """A date in every quarter: 'trước ngày 20 của tháng cuối quý' is
    `{kind: quarterly, day: 20}` (20 Mar, 20 Jun, 20 Sep, 20 Dec)."""

    kind: Literal["quarterly"] = Field(description="'quarterly'.")
    day: int = Field(ge=1, le=31, description="Day of the month, e.g. 20.")
    month_of_quarter: MonthOfQuarter = Field(
        default="last",
        description=(
            "Which month of each quarter: first (Jan, Apr, Jul, Oct), middle (Feb, May, Aug, "
            "Nov) or last (Mar, Jun, Sep, Dec; the default), e.g. `month_of_quarter: last`."
        ),
    )
    label: str = Field(
        default="{year}-q{quarter}",
        max_length=60,
        description=(
            "Period label template, default '{year}-q{quarter}' (2026-q3). Placeholders: "
            "{year}, {quarter} (1-4), {month}, {day}, all of the day named."
        ),
    )

    @model_validator(mode="after")
    def _every_quarter_has_the_day(self) -> QuarterlyDue:
        shortest = _SHORTEST_MONTH[self.month_of_quarter]
        if self.day > shortest:
            raise ValueError(
                f"day {self.day} does not exist in every {self.month_of_quarter} month of a "
                f"quarter (the shortest has {shortest} days)"
            )
        if self.inclusive and self.time is not None:
            raise ValueError("`time` already makes the day named the last day: drop `inclusive`")
        return self

    @property
    def months(self) -> tuple[int, int, int, int]:
        return MONTHS_OF_QUARTER[self.month_of_quarter]


class EveryDue(Model):
    """A task per period with no day named ('hằng năm', 'hằng quý', 'định kỳ'): each period
    of the agreement closes its own task, due at the first day of the next period 00:00
    (the period's last day is the last day on time), clipped to the agreement's period."""

    kind: Literal["every"] = Field(description="'every'.")
    period: Literal["year", "quarter", "month"] = Field(
        description=(
            "year, quarter or month: `period: year` gives one task per calendar year, due "
            "'before 1/1 of the next year' (or the day after the agreement ends)."
        )
    )
    label: str | None = Field(
        default=None,
        max_length=60,
        description=(
            "Period label template; default '{year}', '{year}-q{quarter}' or "
            "'{year}-{month:02d}'. Placeholders of the period itself (not of its due day): "
            "{year}, {quarter}, {month}."
        ),
    )

    @field_validator("label")
    @classmethod
    def _label_template(cls, value: str | None) -> str | None:
        if value is None:
            return value
        return _check_label_template(value, ("year", "quarter", "month"))

    @property
    def label_template(self) -> str:
        if self.label:
            return self.label
        return {"year": "{year}", "quarter": "{year}-q{quarter}", "month": "{year}-{month:02d}"}[
            self.period
        ]


class EventDue(Model):
    """Due a distance after an event the text names ('trong vòng 15 ngày sau hội nghị'): no
    task exists until an admin records the event with its date (`accord event record`)."""

    kind: Literal["after_event"] = Field(description="'after_event'.")
    event: Slug = Field(
        description=(
            "The event's identifier, used by `accord event record AGREEMENT EVENT --date ...`, "
            "e.g. `hoi-nghi-so-ket`."
        )
    )
    within: OffsetText = Field(
        description=(
            "Time allowed after the event's day, in days or working days: '15d' (the last "
            "day is the 15th day after the event) or '5wd' (the 5th working day after)."
        )
    )

    @field_validator("within")
    @classmethod
    def _days(cls, value: Offset) -> Offset:
        if value.unit not in (OffsetUnit.DAYS, OffsetUnit.WORKING_DAYS) or value.amount < 1:
            raise ValueError(
                f"within {value} must count days or working days after the event, e.g. "
                "'15d' or '5wd'"
            )
        return value


class RelativeDue(Model):
    """Due a fixed distance after the agreement's start, e.g. `after_start: {years: 5}`."""

    kind: Literal["relative"] = Field(description="'relative'.")
    years: int = Field(default=0, ge=0, le=50, description="Years after the start.")
    months: int = Field(default=0, ge=0, le=600, description="Months after the start.")
    days: int = Field(default=0, ge=0, le=20_000, description="Days after the start.")
    label: Slug | None = Field(
        default=None, description="Reporting-period label in task IDs; default: the year."
    )

    @model_validator(mode="after")
    def _some_distance(self) -> RelativeDue:
        if not (self.years or self.months or self.days):
            raise ValueError("give years, months or days after the start")
        return self


class NoDue(Model):
    """No date in the text: tracked and listed, never reminded nor escalated."""

    kind: Literal["none"] = Field(description="'none'.")
    label: Slug | None = Field(
        default=None, description="Label in task IDs; default: the agreement's first year."
    )


Due = Annotated[
    FixedDue | RecurringDue | QuarterlyDue | EveryDue | EventDue | RelativeDue | NoDue,
    Field(discriminator="kind"),
]


class DeadlineRule(StrEnum):
    """What happens when the last day of a time limit is not a working day."""

    NEXT_WORKING_DAY = "next_working_day"
    """Civil Code 2015, art. 148: the limit ends at the end of the next working day (default)."""
    PREVIOUS_WORKING_DAY = "previous_working_day"
    """The limit ends at the end of the last working day before it."""
    AS_WRITTEN = "as_written"
    """The date stays as the document wrote it, weekend or holiday."""


class ReportingPeriodPreset(StrEnum):
    """Data cut-off windows of Decree 09/2019/NĐ-CP, art. 12 (the period a report covers)."""

    MONTHLY = "monthly"
    """15th of the previous month to the 14th of the reporting month."""
    QUARTERLY = "quarterly"
    """15th of the month before the quarter to the 14th of the quarter's last month."""
    SIX_MONTH = "six_month"
    """15 Dec of the previous year to 14 Jun."""
    NINE_MONTH = "nine_month"
    """15 Dec of the previous year to 14 Sep."""
    ANNUAL = "annual"
    """15 Dec of the previous year to 14 Dec."""


class Obligation(Model):
    """Something an agency must deliver: a report, a plan, an inspection, or another action."""

    id: Slug = Field(description="Identifier unique within the agreement, e.g. `bao-cao-6-thang`.")
    title: Text = Field(description="What is owed, in Vietnamese.")
    deliverable: Deliverable = Field(description="report, plan, inspection or other.")
    owners: Owners = Field(description="Who owes it.")
    recipient: AgencyCode | None = Field(
        default=None, description="Agency it is delivered to (the aggregator), e.g. `SNV`."
    )
    copy_to: list[AgencyCode] = Field(
        default_factory=list,
        max_length=20,
        description=(
            "Agencies that receive a copy for information (đồng gửi), e.g. `[BTGDV]`: their "
            "focal points get every reminder, escalation step and receipt of the obligation, "
            "marked 'Đồng gửi để biết'. They owe nothing."
        ),
    )
    due: Due = Field(description="When it is due; see the deadline convention.")
    indicators: list[Indicator] = Field(
        default_factory=list, description="Figures the report must carry."
    )
    notifications: NotificationPolicy | None = Field(
        default=None, description="Overrides of the agreement's reminder and escalation defaults."
    )
    source: Text | None = Field(
        default=None, description="Where the text says so (section, quotation)."
    )
    assumed: Text | None = Field(
        default=None,
        description="Set when the date or owner is not in the source: explains the assumption.",
    )
    deadline_rule: DeadlineRule | None = Field(
        default=None,
        description=(
            "When the last day is a weekend or holiday: overrides the agreement's deadline_rule."
        ),
    )
    reporting_period: ReportingPeriodPreset | None = Field(
        default=None,
        description=(
            "Decree 09/2019/NĐ-CP data cut-off window the report covers (monthly, quarterly, "
            "six_month, nine_month, annual), separate from the submission due date."
        ),
    )
    extension_approver: list[ExtensionApprover] = Field(
        default_factory=lambda: list(DEFAULT_EXTENSION_APPROVERS),
        min_length=1,
        description=(
            "Who decides its extension requests: `recipient_head` (the head or a deputy head "
            "of the recipient agency) and/or `provincial_leadership`; default both, e.g. "
            "`[provincial_leadership]`. Never the officer who asked, nor an officer of an "
            "owing agency: an obligation whose recipient also owes it needs "
            "`provincial_leadership`."
        ),
    )

    @field_validator("extension_approver")
    @classmethod
    def _approver_exists(
        cls, approvers: list[ExtensionApprover], info: ValidationInfo
    ) -> list[ExtensionApprover]:
        if approvers != [ExtensionApprover.RECIPIENT_HEAD]:
            return approvers
        recipient = info.data.get("recipient")
        owners = info.data.get("owners")
        if recipient is None and "recipient" in info.data:
            raise ValueError(
                "recipient_head needs a recipient agency; add provincial_leadership or name "
                "the recipient"
            )
        if isinstance(owners, Owners) and recipient in owners.agencies:
            raise ValueError(
                f"the recipient {recipient} also owes this obligation, so its head cannot "
                "decide its extensions; add provincial_leadership"
            )
        return approvers


class ContentItem(Model):
    """A numbered content item (nội dung phối hợp) or key task of the agreement."""

    number: ItemNumber = Field(description="Number as printed, e.g. `II.3`.")
    title: Text = Field(description="Title of the item, in Vietnamese.")
    text: Text | None = Field(default=None, description="The item's text, quoted or summarised.")
    lead: Owners | None = Field(default=None, description="Lead agencies (cơ quan chủ trì).")
    coordinating: Owners | None = Field(
        default=None, description="Coordinating agencies (cơ quan phối hợp)."
    )
    obligations: list[Obligation] = Field(
        default_factory=list, description="What agencies must deliver under this item."
    )


# --------------------------------------------------------------------------------------------
# The agreement


class AgreementKind(StrEnum):
    MULTI_YEAR_PROGRAMME = "multi_year_programme"
    """Chương trình phối hợp, e.g. 2021–2026."""
    YEARLY_PLAN = "yearly_plan"
    """Kế hoạch phối hợp hằng năm."""
    IMPLEMENTATION_PLAN = "implementation_plan"
    """Kế hoạch of the People's Committee with numbered tasks."""


class Party(Model):
    """A signing party."""

    agency: AgencyCode = Field(description="The party's agency code in the directory.")
    signatory_title: Name | None = Field(
        default=None, description="Title of the person who signs, e.g. 'Chủ tịch UBND tỉnh'."
    )


class Period(Model):
    start: date = Field(description="First day of the period.")
    end: date = Field(description="Last day of the period.")

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        if self.end < self.start:
            raise ValueError(f"period ends ({self.end}) before it starts ({self.start})")
        return self


class SourceNote(Model):
    """Where the agreement's text comes from."""

    document: Text = Field(description="Seed file, URL or archive reference.")
    notes: Text | None = Field(
        default=None, description="Anything a reader of the file should know about the source."
    )
    declared_item_count: int | None = Field(
        default=None,
        ge=1,
        description="Number of content items the source says exist, when not all are encoded.",
    )


class Agreement(Model):
    """A signed coordination agreement, programme or plan."""

    schema_version: Literal[1] = Field(default=1, description="Version of this file format; 1.")
    id: Slug | None = Field(
        default=None,
        description="Stable ID used in workflow IDs; default: document number and signing year.",
    )
    document_number: Name = Field(description="Official number, e.g. `289/KH-UBND`.")
    kind: AgreementKind = Field(
        description="multi_year_programme, yearly_plan or implementation_plan."
    )
    title: Text = Field(description="Vietnamese title.")
    province: Name = Field(description="Province the agreement applies to, e.g. 'Quảng Bình'.")
    issuer: Name | None = Field(default=None, description="Issuing body as printed.")
    parties: list[Party] = Field(min_length=1, description="The signing parties.")
    signed_on: date = Field(description="Date of signature (ngày ký).")
    period: Period = Field(
        description="First and last day the agreement runs (thời gian thực hiện)."
    )
    time_zone: str = Field(default="Asia/Ho_Chi_Minh", description="IANA time zone.")
    legal_bases: list[Text] = Field(default_factory=list, description="Căn cứ.")
    directory: str = Field(
        description="Path of the agency directory file, relative to this file.", max_length=300
    )
    defaults: NotificationPolicy = Field(
        default_factory=NotificationPolicy,
        description="Agreement-wide reminder policy and escalation ladder.",
    )
    items: list[ContentItem] = Field(
        default_factory=list, description="Numbered content items (nội dung) and key tasks."
    )
    reporting: list[Obligation] = Field(
        default_factory=list,
        description="The agreement's reporting regime (chế độ báo cáo), not tied to one item.",
    )
    source: SourceNote | None = Field(
        default=None, description="Where the text comes from, and what is not encoded."
    )
    deadline_rule: DeadlineRule = Field(
        default=DeadlineRule.NEXT_WORKING_DAY,
        description=(
            "When a deadline's last day is a weekend or holiday: next_working_day (Civil Code "
            "2015 art. 148, the default), previous_working_day or as_written."
        ),
    )
    sending_time: time = Field(
        default=time(7, 30),
        description=(
            "Local time of the sending window: reminders and escalations counted in days or "
            "working days go out at this time on working days only (never at night, on a "
            "weekend or a holiday). Offsets in hours, minutes or seconds are sent as computed."
        ),
    )

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @property
    def agreement_id(self) -> str:
        if self.id:
            return self.id
        slug = re.sub(r"[^a-z0-9]+", "-", _ascii_fold(self.document_number).lower()).strip("-")
        return f"{slug}-{self.signed_on.year}"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def all_obligations(self) -> list[tuple[ContentItem | None, Obligation]]:
        pairs: list[tuple[ContentItem | None, Obligation]] = [
            (item, ob) for item in self.items for ob in item.obligations
        ]
        pairs.extend((None, ob) for ob in self.reporting)
        return pairs


def _ascii_fold(text: str) -> str:
    text = text.replace("đ", "d").replace("Đ", "D")
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


# --------------------------------------------------------------------------------------------
# Directory


class AgencyKind(StrEnum):
    PARTY_BODY = "party_body"
    PEOPLES_COMMITTEE = "peoples_committee"
    DEPARTMENT = "department"
    INSPECTORATE = "inspectorate"
    PUBLIC_SERVICE_UNIT = "public_service_unit"
    MEDIA = "media"
    ARMED_FORCES = "armed_forces"
    DISTRICT_PEOPLES_COMMITTEE = "district_peoples_committee"
    """UBND cấp huyện: district level, abolished on 1 July 2025."""
    MASS_ORGANISATION = "mass_organisation"
    COMMUNE = "commune"
    """UBND xã, phường, đặc khu: the commune level, which replaced districts on 1 July 2025."""


class Agency(Model):
    code: AgencyCode = Field(description="Unique code used everywhere else, e.g. 'SNV'.")
    name: Name = Field(description="Vietnamese name, e.g. 'Sở Nội vụ'.")
    kind: AgencyKind = Field(
        description=(
            "What kind of body it is: party_body, peoples_committee, department, inspectorate, "
            "public_service_unit, media, armed_forces, district_peoples_committee, "
            "mass_organisation or commune (UBND xã/phường from 1 July 2025, e.g. "
            "`kind: commune` with `groups: [ubnd_cap_xa]`)."
        )
    )
    groups: list[GroupCode] = Field(
        default_factory=list,
        description="Groups it belongs to, e.g. so_ban_nganh, ubnd_cap_huyen.",
    )
    parent: AgencyCode | None = Field(default=None, description="Agency it belongs to, if any.")
    active_from: date | None = Field(
        default=None,
        description=(
            "First day the agency exists, e.g. `2025-07-01` for a body created by the 2025 "
            "reorganisation: a task whose last day is before it is not issued to the agency."
        ),
    )
    active_until: date | None = Field(
        default=None,
        description="Last day the agency exists (2025 reorganisation); later tasks are not issued.",
    )
    successor: AgencyCode | None = Field(
        default=None, description="Agency that took over its duties after a merger."
    )

    @model_validator(mode="after")
    def _exists_some_day(self) -> Agency:
        if self.active_from and self.active_until and self.active_until < self.active_from:
            raise ValueError(
                f"active_until ({self.active_until}) is before active_from ({self.active_from})"
            )
        return self


class OfficerRole(StrEnum):
    FOCAL_POINT = "focal_point"
    HEAD = "head"
    DEPUTY_HEAD = "deputy_head"
    PROVINCIAL_LEADERSHIP = "provincial_leadership"
    ADMIN = "admin"


Email = Annotated[
    str,
    BeforeValidator(_nfc),
    StringConstraints(
        pattern=r"^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$", max_length=254
    ),
]


class Officer(Model):
    id: Slug = Field(description="Stable identifier, used for sign-in and audit.")
    name: Name = Field(description="Full name (or a role title for demo data).")
    email: Email = Field(description="Demo data uses reserved `*.example` domains only.")
    agency: AgencyCode = Field(description="Code of the officer's agency.")
    roles: list[OfficerRole] = Field(
        min_length=1,
        description="focal_point, head, deputy_head, provincial_leadership, admin.",
    )
    locale: Literal["vi", "en"] = Field(
        default="vi", description="Language of mail: vi (default) or en."
    )


class Directory(Model):
    """Agencies and officers of one province: one tenant's."""

    schema_version: Literal[1] = Field(default=1, description="Version of this file format; 1.")
    tenant: Slug = Field(
        description="The tenant: the body that issues this directory (a province), e.g. "
        "`quang-binh`. Agency codes and officer IDs are unique within a tenant only, and an "
        "agreement's tasks, mail and officers belong to its directory's tenant."
    )
    province: Name = Field(description="Province whose agencies these are.")
    agencies: list[Agency] = Field(min_length=1, description="Agencies (cơ quan, đơn vị).")
    officers: list[Officer] = Field(
        default_factory=list, description="Officers who receive mail and may act on tasks."
    )

    def agency(self, code: str) -> Agency | None:
        return next((a for a in self.agencies if a.code == code), None)

    def members(self, group: str) -> list[Agency]:
        return [a for a in self.agencies if group in a.groups]

    @property
    def groups(self) -> set[str]:
        return {g for a in self.agencies for g in a.groups}
