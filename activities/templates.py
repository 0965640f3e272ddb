"""What a notification says (subject, plain text, HTML; Vietnamese by default, English), and
the bytes that carry it.

The wording is not here: it lives in Jinja2 templates, `activities/mail_templates/{vi,en}/`,
which a province overrides from `<ACCORD_DATA_DIR>/mail_templates/` without a code change
(README, "Rewording mail"). This module computes what the templates are given, every piece of
untrusted data (titles, names, reasons) folded onto one line before it reaches a header or a
template; dates and numbers through Babel with explicit patterns. It must not hold sentences
officials may want to change, do I/O beyond reading templates, or know about SMTP sessions.

Due dates follow the agreement convention: `due_at` is the first late moment, so a due instant
of 15/05 00:00 reads "trước ngày 15/05/2025 (ngày cuối: 14/05/2025)". Every date and time is
shown in the agreement's time zone, and a time of day names it: "trước 16:06 ngày 03/12/2026
(UTC+7)".

Why the message is still written by hand, not with the email package (measured 2026-12-03 on
the 2-core machine, quiet, load average < 1):
- building one reminder with its calendar (`.venv/bin/python bench/compose.py`): 1.5 ms CPU
  with the hand-written writer, 10.6 ms with EmailMessage and policy SMTP (rendering and the
  calendar alone: 1.3 ms), so the email package costs +9 ms a message;
- the whole mail path (`.venv/bin/python bench/run.py --only mail --no-profile`: outbox rows,
  SMTP session, marks; discarding server, 200 notifications one after the other) ran at 67
  messages/s, 11.4 ms CPU a message (the code before the templates: 64/s, 10.7 ms, on the
  same machine that day). A whole country's 07:30 burst of about 4,000 messages then takes
  about 60 s; a tenth of it is 6 s, and the email package would add 4,000 × 9 ms = 36 s.
So the writer stays, checked against the email package's output by
tests/activities/test_wire_format.py. It also keeps spaces between encoded words that
CPython's header folder can drop (gh-144156).
"""

from __future__ import annotations

import base64
import binascii
import email
import functools
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import babel
import jinja2
import jinja2.meta
import jinja2.nodes
from babel.dates import format_date, format_time
from babel.numbers import format_decimal

from activities.models import NotificationKind, NotificationRequest, TaskRef
from agreements.calendar import last_day_of
from agreements.models import RecipientRole, notify_text
from agreements.plain_text import without_format_characters

if TYPE_CHECKING:
    from icalendar import Timezone

Locale = Literal["vi", "en"]

SUBJECT_MAX = 200
DEFAULT_ZONE = "Asia/Ho_Chi_Minh"


@dataclass(frozen=True)
class Recipient:
    """One officer a notification goes to, and the role they receive it in (None: an admin
    told that a notification could not be delivered)."""

    officer_id: str
    name: str
    email: str
    role: RecipientRole | None
    locale: Locale = "vi"

    @classmethod
    def of(cls, officer: Contact, role: RecipientRole | None) -> Recipient:
        """An officer from the directory file or the database, in `role`."""
        return cls(
            officer_id=officer.id,
            name=officer.name,
            email=officer.email,
            role=role,
            locale="en" if officer.locale == "en" else "vi",
        )


class Contact(Protocol):
    """What a recipient is made from: a directory `Officer` or a database `OfficerRow`."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def email(self) -> str: ...
    @property
    def locale(self) -> str: ...


@dataclass(frozen=True)
class RefusedDelivery:
    """A notification the SMTP server refused for good (5xx), as told to the admins."""

    officer_id: str
    officer_name: str
    reply: str
    """The server's reply, e.g. '550 5.1.1 No such mailbox here'."""


@dataclass(frozen=True)
class Attachment:
    """One attachment of a submission, as a receipt lists it: a file uploaded through the
    portal (`sha256:` reference with stored metadata) has its name, size and digest; any other
    reference (a link, a file name given to the CLI, a digest with no stored file) only
    `reference`, shown as it is."""

    reference: str
    name: str | None = None
    size: int | None = None
    """Bytes."""
    sha256: str | None = None


@dataclass(frozen=True)
class ShownAttachment:
    """An `Attachment` as the templates see it: text on one line, the size in words."""

    reference: str
    name: str | None
    size: str | None
    """e.g. `1,5 MB` (vi), `1.5 MB` (en), `512 B`."""
    sha256: str | None


@dataclass(frozen=True)
class RenderedMessage:
    subject: str
    text: str
    html: str


# --------------------------------------------------------------------------------------------
# Text hygiene

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def one_line(text: str) -> str:
    """Collapse every whitespace run (CR and LF included) to one space; drop control chars and
    invisible format characters (bidi overrides, zero-width spaces: `agreements.plain_text`),
    so that no header, subject or line of a mail can be reordered or disguised."""
    return _CONTROL.sub("", " ".join(without_format_characters(text).split()))


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)].rstrip() + "…"


def _ascii_header(value: str) -> str:
    return one_line(value).encode("ascii", "replace").decode("ascii")


# --------------------------------------------------------------------------------------------
# Dates and numbers: Babel, with explicit patterns. Babel's own Vietnamese short date is
# "15/5/25" and its medium one "15 thg 5, 2025"; officials write "15/05/2025", in English mail
# too (an English reader in Vietnam reads the same document dates), so the pattern is fixed.

DAY_PATTERN = "dd/MM/yyyy"
TIME_PATTERN = "HH:mm"


def _zone(task: TaskRef) -> ZoneInfo:
    try:
        return ZoneInfo(task.time_zone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # ZoneInfo("Asia") raises IsADirectoryError; a bad zone must not stop a reminder.
        return ZoneInfo(DEFAULT_ZONE)


@functools.cache
def _babel_locale(locale: Locale) -> babel.Locale:
    """Parsed once: Babel would parse the locale name at every call."""
    return babel.Locale.parse(locale)


@functools.lru_cache(maxsize=4096)
def _day(day: date, locale: Locale) -> str:
    return format_date(day, DAY_PATTERN, locale=_babel_locale(locale))


def _zone_name(local: datetime) -> str:
    """'UTC+7': the offset a time of day is in, for a reader (or a calendar app) elsewhere."""
    offset = local.utcoffset() or timedelta()
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")


@dataclass(frozen=True)
class Moment:
    """An instant as the templates show it, in the agreement's zone. `midnight`: the instant
    is 00:00 local, a deadline of "before that day" whose `last_day` is the day before."""

    day: str
    time: str
    zone: str
    midnight: bool
    last_day: str


@functools.lru_cache(maxsize=4096)
def _moment(at: datetime, zone: ZoneInfo, locale: Locale) -> Moment:
    """Cached: a task's due instant and a notice's time come back for every recipient and
    every notice of the task (`accord plan` asks for thousands)."""
    local = at.astimezone(zone)
    return Moment(
        day=_day(local.date(), locale),
        time=format_time(local, TIME_PATTERN, locale=_babel_locale(locale)),
        zone=_zone_name(local),
        midnight=local.time() == time.min,
        last_day=_day(local.date() - timedelta(days=1), locale),
    )


def size_text(size: int, locale: Locale) -> str:
    """A byte count as people read it: `512 B`, `4 KB`, `1,5 MB` (vi) or `1.5 MB` (en)."""
    for unit, factor in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if size >= factor:
            number = format_decimal(size / factor, "#,##0.#", locale=_babel_locale(locale))
            return f"{number} {unit}"
    return f"{_number(size, locale)} B"


def _shown_attachments(
    attachments: Sequence[Attachment], locale: Locale
) -> tuple[ShownAttachment, ...]:
    return tuple(
        ShownAttachment(
            reference=one_line(a.reference),
            name=one_line(a.name) if a.name is not None else None,
            size=size_text(a.size, locale) if a.size is not None else None,
            sha256=a.sha256,
        )
        for a in attachments
    )


def _whole_days(delta: timedelta, locale: Locale) -> str | None:
    if delta < timedelta(days=1):
        return None
    return _number(delta.days, locale)


@functools.lru_cache(maxsize=1024)
def _number(n: int, locale: Locale) -> str:
    return format_decimal(n, locale=_babel_locale(locale))


# --------------------------------------------------------------------------------------------
# Templates

TemplateError = jinja2.TemplateError
PACKAGE_TEMPLATES = Path(__file__).parent / "mail_templates"
_KINDS = [kind.value for kind in NotificationKind]

VARIABLES = frozenset(
    {
        "kind", "recipient_name", "role", "owing", "copy", "title", "agency", "deliverable",
        "period",
        "document", "issuer", "receiving_agency", "due", "asked_due", "new_due", "now",
        "days_left", "days_overdue", "step", "late", "approved", "reason", "acted_by",
        "portal", "portal_url", "attachments", "order_document", "previous_due",
        "previous_agency", "previous_receiving_agency", "original_agency", "effective",
        "suspended_days",
    }
)  # fmt: skip
"""What `_variables` gives every template (README, "Rewording mail")."""
_KIND_NAMES = VARIABLES | {"lang", "deliverable_name", "w"}
_FAILURE_NAMES = frozenset({"about_kind", "refused_name", "refused_id"})
_NO_RECIPIENT_NAMES = frozenset({"about_kind", "missing_roles"})
_EXTRA_NAMES = {
    NotificationKind.DELIVERY_FAILED.value: _FAILURE_NAMES,
    NotificationKind.NO_RECIPIENT.value: _NO_RECIPIENT_NAMES,
}
"""What the admins' notices about another notification get besides `VARIABLES`."""
_LAYOUT_NAMES = (_KIND_NAMES - {"w"}) | {
    "greeting", "footer", "subject", "paragraphs", "actions", "note", "facts", "portal_label",
}  # fmt: skip
DIGEST_VARIABLES = frozenset(
    {
        "lang", "recipient_name", "role", "kind", "document", "title", "periods", "due_days",
        "as_of", "totals", "rows", "missing", "overdue", "xlsx_name", "portal_url",
    }
)  # fmt: skip
"""What the digest's templates (`digest.txt.j2`, `digest.html.j2`) are given; the HTML one
also `subject` and `chart_cid`."""
_OTHER_TEMPLATES = (jinja2.nodes.Include, jinja2.nodes.Import, jinja2.nodes.FromImport)
_MISSING = object()
_RECIPIENT_NAMES = frozenset({"recipient_name", "role", "owing", "copy", "portal_url"})
"""The variables that differ between two recipients of one notification in one language (a
test derives them from `_variables`: a new one must be added here, or `accord plan` would
give every recipient of a notification the first one's subject)."""
_NOTIFICATION_NAMES = _KIND_NAMES - _RECIPIENT_NAMES - {"w"}
"""The variables that are the same for every recipient of a notification in one language."""


class MailTemplateError(Exception):
    """A template that cannot be used, as one line: '<file>:<line>: <what is wrong>'."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        super().__init__(f"{path}:{line or 1}: {message}")
        self.path = path
        self.line = line


class MailTemplates:
    """The mail wording: Jinja2 templates, looked up first in `override` (a province's
    `<ACCORD_DATA_DIR>/mail_templates/`), then in the package's `mail_templates/`.

    Per language (`vi/`, `en/`): `<kind>.txt.j2` holds a notification kind's wording in
    blocks (`subject`, `body`, `actions`, `note`); `_words.txt.j2` the words every kind
    shares; `_layout.txt.j2` and `_layout.html.j2` the two parts of the message. Wording is
    plain text (never escaped); the HTML layout escapes everything it shows (autoescape).
    Any undefined name is an error (StrictUndefined), not an empty string in an officer's mail.
    An override may copy a file whole, or extend the package's own and replace one block:
    `{% extends "package/vi/reminder.txt.j2" %}` (the package's files under `package/`).
    """

    def __init__(self, override: Path | None = None) -> None:
        folders = [str(override)] if override is not None else []
        self.override = override
        self._plain: dict[Locale, Any] = {}
        self._extends: dict[str, bool] = {}
        self._nouns: dict[tuple[Locale, str], str] = {}
        self._subject_names: dict[tuple[NotificationKind, Locale], tuple[str, ...] | None] = {}
        self._subjects: dict[tuple[Any, ...], str] = {}
        self._word_names: dict[Locale, tuple[str, ...] | None] = {}
        self._word_modules: dict[tuple[Any, ...], Any] = {}
        self._env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(
                [
                    jinja2.FileSystemLoader([*folders, str(PACKAGE_TEMPLATES)]),
                    jinja2.PrefixLoader({"package": jinja2.FileSystemLoader(PACKAGE_TEMPLATES)}),
                ]
            ),
            autoescape=jinja2.select_autoescape(
                enabled_extensions=("html.j2",), default_for_string=False, default=False
            ),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=False,
            auto_reload=False,
        )

    def load_all(self) -> None:
        """Compile every template once and check the names it uses: a broken override stops
        the worker at start-up with its file and line (MailTemplateError), not the first
        reminder at 07:30. A name no template is given (a typo, or `{{ officer }}`) is caught
        here in every branch, though StrictUndefined would only raise when a mail takes it."""
        for locale in ("vi", "en"):
            for kind in _KINDS:
                extra = _EXTRA_NAMES.get(kind, frozenset())
                self._check(f"{locale}/{kind}.txt.j2", _KIND_NAMES | extra)
            self._check(f"{locale}/_words.txt.j2", _KIND_NAMES - {"w"})
            for layout in ("txt", "html"):
                self._check(f"{locale}/_layout.{layout}.j2", _LAYOUT_NAMES)
            self._check(f"{locale}/digest.txt.j2", DIGEST_VARIABLES)
            self._check(f"{locale}/digest.html.j2", DIGEST_VARIABLES | {"subject", "chart_cid"})

    def _check(self, name: str, given: frozenset[str]) -> None:
        try:
            template = self._env.get_template(name)
        except jinja2.TemplateSyntaxError as error:
            raise MailTemplateError(
                error.filename or name, error.lineno, error.message or "syntax error"
            ) from error
        path = template.filename or name
        source = Path(path).read_text(encoding="utf-8") if template.filename else ""
        tree = self._env.parse(source, name, path)
        for extends in tree.find_all(jinja2.nodes.Extends):
            parent = extends.template
            if isinstance(parent, jinja2.nodes.Const) and parent.value == name:
                hint = f'{{% extends "package/{name}" %}}'
                message = f"extends itself; extend the package's file: {hint}"
                raise MailTemplateError(path, extends.lineno, message)
        unknown = jinja2.meta.find_undeclared_variables(tree) - given
        if unknown:
            first = min(
                (node for node in tree.find_all(jinja2.nodes.Name) if node.name in unknown),
                key=lambda node: node.lineno,
            )
            raise MailTemplateError(path, first.lineno, f"{first.name!r} is undefined")

    def _plain_words(self, locale: Locale) -> Any:
        """The wording macros given no variables (the deliverable's name), built once."""
        words = self._plain.get(locale)
        if words is None:
            words = self._plain[locale] = self._words(locale, {})
        return words

    def _deliverable_name(self, locale: Locale, deliverable: str) -> str:
        """`w.deliverable(kind)` given no variables: the same for the same kind, kept."""
        key = (locale, deliverable)
        noun = self._nouns.get(key)
        if noun is None:
            noun = self._nouns[key] = str(self._plain_words(locale).deliverable(deliverable))
        return noun

    def _words(self, locale: Locale, variables: dict[str, Any]) -> Any:
        """The wording macros (`w`) given `variables`. Built once for the values of the names
        the words template reads (a module per message cost a third of a subject)."""
        names = self._words_reads(locale)
        if names is None:
            return self._make_words(locale, variables)
        key = (locale, *(variables.get(name, _MISSING) for name in names))
        try:
            words = self._word_modules.get(key)
        except TypeError:  # a value that cannot be a key: build the module as it is
            return self._make_words(locale, variables)
        if words is None:
            if len(self._word_modules) >= 4096:
                self._word_modules.clear()
            words = self._word_modules[key] = self._make_words(locale, variables)
        return words

    def _make_words(self, locale: Locale, variables: dict[str, Any]) -> Any:
        return self._env.get_template(f"{locale}/_words.txt.j2").make_module(variables)

    def _words_reads(self, locale: Locale) -> tuple[str, ...] | None:
        """Every variable the words template (and what it extends) reads; None when it
        includes or imports another template, or extends one not named by a constant."""
        if locale not in self._word_names:
            chain = self._chain(f"{locale}/_words.txt.j2")
            names: set[str] = set()
            for tree in chain or []:
                if any(tree.find(kind) for kind in _OTHER_TEMPLATES):
                    chain = None
                    break
                names |= jinja2.meta.find_undeclared_variables(tree)
            self._word_names[locale] = None if chain is None else tuple(sorted(names))
        return self._word_names[locale]

    def _blocks(
        self, kind: NotificationKind, locale: Locale, variables: dict[str, Any]
    ) -> tuple[dict[str, Any], Callable[[str], str]]:
        """The variables as the kind's template sees them, and a function rendering one of
        its blocks with them."""
        variables = dict(variables, lang=locale)
        variables["deliverable_name"] = self._deliverable_name(locale, variables["deliverable"])
        variables["w"] = self._words(locale, variables)
        name = f"{locale}/{kind.value}.txt.j2"
        template = self._env.get_template(name)
        context = template.new_context(variables)
        if self._has_extends(name):
            # Rendering the whole template once fills `context.blocks` along the `extends`
            # chain: an override that replaces one block keeps its parent's others. Without
            # `extends` the context has every block already (`accord plan` saves the pass).
            for _ in template.root_render_func(context):
                pass

        def block(name: str) -> str:
            return "".join(context.blocks[name][0](context)).strip()

        return variables, block

    def _tree(self, name: str) -> jinja2.nodes.Template:
        """A template's syntax tree, freshly parsed (the caller may change it)."""
        loader = self._env.loader
        assert loader is not None
        source, filename, _ = loader.get_source(self._env, name)
        return self._env.parse(source, name, filename)

    def _chain(self, name: str) -> list[jinja2.nodes.Template] | None:
        """The trees of a template and of the ones it extends, the template's own first; None
        if a parent is not named by a constant (it could depend on the variables)."""
        trees = []
        seen = set()
        while name not in seen:
            seen.add(name)
            tree = self._tree(name)
            trees.append(tree)
            extends = tree.find(jinja2.nodes.Extends)
            if extends is None:
                return trees
            if not isinstance(extends.template, jinja2.nodes.Const):
                return None
            name = str(extends.template.value)
        return None

    def _has_extends(self, name: str) -> bool:
        found = self._extends.get(name)
        if found is None:
            found = self._extends[name] = self._tree(name).find(jinja2.nodes.Extends) is not None
        return found

    def subject_per_recipient(self, kind: NotificationKind, locale: Locale) -> bool:
        """Whether the subject of `kind` in `locale` may differ between two recipients of one
        notification: it (or a wording macro it calls) uses `recipient_name`, `role` or
        `owing`, or anything this check cannot follow. False for the package's templates, so
        `accord plan` renders a subject once per notification and language; a province's
        override that names the recipient in the subject is rendered for each recipient."""
        return self.subject_recipient_names(kind, locale) != ()

    def subject_recipient_names(
        self, kind: NotificationKind, locale: Locale
    ) -> tuple[str, ...] | None:
        """The recipient variables (`recipient_variables`) the subject of `kind` reads: two
        recipients of a notification with the same values read the same subject. None when
        the subject reads a name this analysis does not know or does something it does not
        follow: then each recipient gets their own."""
        names = self._subject_reads(kind, locale)
        if names is None or not set(names) <= _NOTIFICATION_NAMES | _RECIPIENT_NAMES:
            return None
        return tuple(name for name in names if name in _RECIPIENT_NAMES)

    def _subject_reads(self, kind: NotificationKind, locale: Locale) -> tuple[str, ...] | None:
        """Every variable the subject of `kind` reads, directly or through the wording macros
        it calls (`title` always: a long subject is shortened by it); None when it does
        something this analysis does not follow. Cached per kind and language."""
        key = (kind, locale)
        if key not in self._subject_names:
            names = self._subject_free_names(kind, locale)
            self._subject_names[key] = None if names is None else tuple(sorted(names | {"title"}))
        return self._subject_names[key]

    def _subject_free_names(self, kind: NotificationKind, locale: Locale) -> set[str] | None:
        chain = self._chain(f"{locale}/{kind.value}.txt.j2")
        if chain is None:
            return None
        names: set[str] = set()
        words: set[str] = set()
        for tree in chain:
            # What renders the subject: its block (with `super()`, the parents' too) and the
            # code outside blocks; every other block is left out of the analysis.
            for block in tree.find_all(jinja2.nodes.Block):
                inner = {b.name for b in block.find_all(jinja2.nodes.Block)}
                if block.name != "subject" and "subject" not in inner:
                    block.body = []
            if any(node.name == "self" for node in tree.find_all(jinja2.nodes.Name)):
                return None  # `self.body()`: another block, not followed
            if any(tree.find(kind) for kind in _OTHER_TEMPLATES):
                return None  # another template, maybe given the whole context: not followed
            names |= jinja2.meta.find_undeclared_variables(tree)
            uses = [n for n in tree.find_all(jinja2.nodes.Name) if n.name == "w"]
            calls = [
                g.attr
                for g in tree.find_all(jinja2.nodes.Getattr)
                if isinstance(g.node, jinja2.nodes.Name) and g.node.name == "w"
            ]
            if len(calls) != len(uses):
                return None  # `w` passed around or indexed: not followed
            words.update(calls)
        names.discard("w")
        if words:
            read = self._macros_read(locale, words)
            if read is None:
                return None
            names |= read
        return names

    def _macros_read(self, locale: Locale, called: set[str]) -> set[str] | None:
        """The variables the wording macros `called` (and those they call) read; None when
        one is not found or does something this analysis does not follow."""
        chain = self._chain(f"{locale}/_words.txt.j2")
        if chain is None:
            return None
        macros: dict[str, jinja2.nodes.Macro] = {}
        for tree in reversed(chain):  # the override's own macros win
            macros.update({m.name: m for m in tree.find_all(jinja2.nodes.Macro)})
        names: set[str] = set()
        todo, done = list(called), set()
        while todo:
            name = todo.pop()
            if name in done:
                continue
            done.add(name)
            macro = macros.get(name)
            if macro is None:
                return None
            if any(node.name == "self" for node in macro.find_all(jinja2.nodes.Name)):
                return None
            if any(macro.find(kind) for kind in _OTHER_TEMPLATES):
                return None
            alone = jinja2.nodes.Template([macro])
            alone.set_environment(self._env)
            for free in jinja2.meta.find_undeclared_variables(alone):
                if free in macros:
                    todo.append(free)
                else:
                    names.add(free)
        return names

    def subject(self, kind: NotificationKind, locale: Locale, variables: dict[str, Any]) -> str:
        """The subject line alone (what `accord plan` lists). Kept per the values of the
        variables it reads: the reminders of one task read the same subject."""
        names = self._subject_reads(kind, locale)
        key: tuple[Any, ...] | None = None
        if names is not None:
            given = dict(variables, lang=locale)
            given["deliverable_name"] = self._deliverable_name(locale, variables["deliverable"])
            key = (kind, locale, *(given.get(name, _MISSING) for name in names))
            try:
                found = self._subjects.get(key)
            except TypeError:  # a value that cannot be a key
                found, key = None, None
            if found is not None:
                return found
        variables, block = self._blocks(kind, locale, variables)
        subject = self._subject(kind, locale, variables, block)
        if key is not None:
            if len(self._subjects) >= 4096:
                self._subjects.clear()
            self._subjects[key] = subject
        return subject

    def _subject(
        self,
        kind: NotificationKind,
        locale: Locale,
        variables: dict[str, Any],
        block: Callable[[str], str],
    ) -> str:
        subject = one_line(block("subject"))
        if len(subject) > SUBJECT_MAX:
            # A long obligation title gives way first, so the agency and the date stay visible.
            room = SUBJECT_MAX - (len(subject) - len(variables["title"]))
            shorter = dict(variables, title=_shorten(variables["title"], max(room, 20)))
            _, shorter_block = self._blocks(kind, locale, shorter)
            subject = one_line(shorter_block("subject"))
        return _shorten(subject, SUBJECT_MAX)

    def render(
        self,
        kind: NotificationKind,
        locale: Locale,
        variables: dict[str, Any],
        facts: list[tuple[str, str]],
    ) -> RenderedMessage:
        variables, block = self._blocks(kind, locale, variables)
        words = variables["w"]
        subject = self._subject(kind, locale, variables, block)
        paragraphs = [one_line(p) for p in block("body").split("\n\n") if p.strip()]
        actions = [one_line(a) for a in block("actions").split("\n\n") if a.strip()]
        note = one_line(block("note"))
        shown = [(str(words.label(key)), value) for key, value in facts]
        portal_url = variables.get("portal_url")
        label = getattr(words, "portal_label", None)  # an override's words may predate it
        portal_label = one_line(str(label(kind.value))) if portal_url and label else ""
        # The layouts get the wording as finished strings, not `w`: in the autoescaped HTML
        # layout a macro's output would count as safe markup, data inside it unescaped.
        parts = {name: value for name, value in variables.items() if name != "w"}
        parts.update(
            greeting=one_line(str(words.greeting())),
            footer=one_line(str(words.footer())),
            subject=subject,
            paragraphs=paragraphs,
            actions=actions,
            note=note,
            facts=shown,
            portal_label=portal_label,
        )
        text = self._env.get_template(f"{locale}/_layout.txt.j2").render(parts)
        html = self._env.get_template(f"{locale}/_layout.html.j2").render(parts)
        return RenderedMessage(subject=subject, text=text.rstrip("\n") + "\n", html=html + "\n")

    def render_digest(
        self, locale: Locale, variables: Mapping[str, Any], *, chart_cid: str
    ) -> RenderedMessage:
        """The compliance digest to one officer: `digest.txt.j2` gives the plain text and its
        `subject` macro the subject; `digest.html.j2` the HTML part (autoescaped), whose chart
        is the inline image `cid:<chart_cid>`."""
        given = {name: variables[name] for name in DIGEST_VARIABLES if name != "lang"}
        given["lang"] = locale
        module: Any = self._env.get_template(f"{locale}/digest.txt.j2").make_module(given)
        subject = _shorten(one_line(str(module.subject())), SUBJECT_MAX)
        text = str(module).strip("\n") + "\n"
        html = self._env.get_template(f"{locale}/digest.html.j2").render(
            given, subject=subject, chart_cid=chart_cid
        )
        return RenderedMessage(subject=subject, text=text, html=html.rstrip("\n") + "\n")

    def due_text(self, due_at: datetime, zone: ZoneInfo, locale: Locale) -> str:
        words = self._words(locale, {})
        return str(words.due_long(_moment(due_at, zone, locale)))


@functools.cache
def package_templates() -> MailTemplates:
    """The package's templates alone (tests, tools; the worker passes its own)."""
    return MailTemplates()


# --------------------------------------------------------------------------------------------
# What a template is given


def _agency_label(code: str, names: Mapping[str, str]) -> str:
    name = names.get(code)
    return f"{one_line(name)} ({code})" if name else code


def _approved_due(request: NotificationRequest) -> datetime | None:
    """The deadline in force after an approval. The workflow has already moved the task's
    due instant (the date asked for, after the working-calendar rule, which the due note
    explains); the date asked for stands in when the task has none."""
    return request.task.due_at or request.new_due_at


def recipient_variables(recipient: Recipient) -> dict[str, Any]:
    """The variables that differ between the recipients of one notification (the names in
    `_RECIPIENT_NAMES`)."""
    role = recipient.role
    return {
        "recipient_name": one_line(recipient.name),
        "role": role.value if role is not None else None,
        "owing": role in (RecipientRole.FOCAL_POINT, RecipientRole.HEAD_OF_AGENCY),
        "copy": role is RecipientRole.COPY,
    }


def _variables(
    request: NotificationRequest,
    recipient: Recipient,
    names: Mapping[str, str],
    locale: Locale,
    portal_url: str | None = None,
    attachments: Sequence[Attachment] = (),
) -> dict[str, Any]:
    """Everything a template is given (README, "Rewording mail"), folded to one line.

    `portal_url`: the recipient's own signed portal link (`infra.links`), None when the mail
    carries none (`accord plan`, `accord simulate`, a worker built without links).
    `attachments`: a receipt's submission's attachments (the mail activity looks them up)."""
    task = request.task
    zone = _zone(task)

    def moment(at: datetime | None) -> Moment | None:
        return _moment(at, zone, locale) if at is not None else None

    due_at = task.due_at
    scheduled = request.scheduled_at
    return {
        "kind": request.kind.value,
        **recipient_variables(recipient),
        "title": one_line(task.title),
        "agency": ", ".join(one_line(names.get(code) or code) for code in task.owners),
        "deliverable": task.deliverable.value,
        "period": one_line(task.period_label),
        "document": one_line(task.document_number),
        "issuer": one_line(task.issuer) if task.issuer else None,
        "receiving_agency": _agency_label(task.recipient, names) if task.recipient else None,
        "due": moment(due_at),
        "asked_due": moment(request.new_due_at),
        "new_due": moment(_approved_due(request)) if request.approved else None,
        "now": moment(scheduled),
        "days_left": _whole_days(due_at - scheduled, locale) if due_at else None,
        "days_overdue": _whole_days(scheduled - due_at, locale) if due_at else None,
        "step": request.step,
        "late": request.late,
        "approved": request.approved,
        "reason": one_line(request.reason) if request.reason else None,
        "acted_by": _acted_by(request, names),
        "portal": portal_url is not None,
        "portal_url": portal_url,
        "attachments": _shown_attachments(attachments, locale),
        "order_document": one_line(request.order_document) if request.order_document else None,
        "previous_due": moment(request.previous_due_at),
        "previous_agency": _agency_label(request.previous_agency, names)
        if request.previous_agency
        else None,
        "previous_receiving_agency": _agency_label(request.previous_recipient, names)
        if request.previous_recipient
        else None,
        "original_agency": _agency_label(task.original_agency, names)
        if task.original_agency
        else None,
        "effective": _day(request.effective, locale) if request.effective else None,
        "suspended_days": _number(request.suspended_days, locale)
        if request.suspended_days is not None
        else None,
    }


def _acted_by(request: NotificationRequest, names: Mapping[str, str]) -> str | None:
    """The officer whose action the notification reports, e.g. 'quan-tri-snv (Sở Nội vụ)'."""
    if not request.acted_by:
        return None
    if request.acted_by_agency:
        return f"{one_line(request.acted_by)} ({_agency_label(request.acted_by_agency, names)})"
    return one_line(request.acted_by)


def _facts(
    request: NotificationRequest,
    names: Mapping[str, str],
    templates: MailTemplates,
    locale: Locale,
) -> list[tuple[str, str]]:
    """(label key, value) lines of the facts table; the templates name the labels."""
    task = request.task
    zone = _zone(task)

    def due(at: datetime) -> str:
        return templates.due_text(at, zone, locale)

    facts = [
        ("agreement", f"{one_line(task.document_number)} – {one_line(task.agreement_title)}"),
    ]
    if task.item_number:
        facts.append(("item", one_line(task.item_number)))
    facts.append(("obligation", one_line(task.title)))
    facts.append(("period", one_line(task.period_label)))
    facts.append(("agency", ", ".join(_agency_label(code, names) for code in task.owners)))
    if task.recipient:
        facts.append(("recipient", _agency_label(task.recipient, names)))
    if task.copy_to:
        facts.append(("copy_to", ", ".join(_agency_label(code, names) for code in task.copy_to)))
    no_due = str(templates._words(locale, {}).no_due())
    current = due(task.due_at) if task.due_at else no_due
    asked = due(request.new_due_at) if request.new_due_at else None
    if request.kind is NotificationKind.EXTENSION_DECIDED and request.approved:
        if request.previous_due_at is not None:
            facts.append(("previous_due", due(request.previous_due_at)))
        new_due = _approved_due(request)
        facts.append(("new_due", due(new_due) if new_due else no_due))
    elif request.kind is NotificationKind.EXTENSION_DECIDED and request.approved is False:
        facts.append(("kept_due", current))
        if asked:
            facts.append(("declined_due", asked))
    elif request.kind in _ORDER_KINDS and request.previous_due_at is not None:
        facts.append(("previous_due", due(request.previous_due_at)))
        facts.append(("new_due", current))
    else:
        facts.append(("due", current))
        if asked:
            facts.append(("asked_due", asked))
    if task.covers_from and task.covers_to:
        span = f"{_day(task.covers_from, locale)} – {_day(task.covers_to, locale)}"
        facts.append(("covers", span))
    note = task.due_note_en if locale == "en" else task.due_note_vi
    if note:
        facts.append(("due_note", one_line(note)))
    if task.original_agency:
        facts.append(("original_agency", _agency_label(task.original_agency, names)))
    if request.order_document:
        facts.append(("order_document", one_line(request.order_document)))
    if request.reason:
        facts.append(("reason", one_line(request.reason)))
    facts.append(("task", one_line(task.task_id)))
    return facts


_ORDER_KINDS = frozenset(
    {
        NotificationKind.WITHDRAWN,
        NotificationKind.DUE_CHANGED,
        NotificationKind.SUSPENDED,
        NotificationKind.RESUMED,
        NotificationKind.TRANSFERRED,
    }
)
"""Issue 17: what the agreement's orders send; a moved deadline shows the old and the new."""


def _locale(recipient: Recipient) -> Locale:
    return "en" if recipient.locale == "en" else "vi"


def render(
    request: NotificationRequest,
    *,
    recipient: Recipient,
    agency_names: Mapping[str, str],
    templates: MailTemplates | None = None,
    portal_url: str | None = None,
    attachments: Sequence[Attachment] = (),
) -> RenderedMessage:
    """Subject, plain text and HTML of `request` for one recipient, in their language.

    `agency_names` maps agency codes (the task's agency and recipient) to their names; a
    missing code is shown as the code itself. `attachments`: what a receipt lists.
    """
    if request.kind in (NotificationKind.DELIVERY_FAILED, NotificationKind.NO_RECIPIENT):
        raise ValueError(
            f"{request.kind.value} notices are built from the notice they are about "
            "(build_delivery_failure, compose_no_recipient)"
        )
    templates = templates or package_templates()
    locale = _locale(recipient)
    variables = _variables(request, recipient, agency_names, locale, portal_url, attachments)
    facts = _facts(request, agency_names, templates, locale)
    return templates.render(request.kind, locale, variables, facts)


def subject(
    request: NotificationRequest,
    *,
    recipient: Recipient,
    agency_names: Mapping[str, str],
    templates: MailTemplates | None = None,
    portal_url: str | None = None,
) -> str:
    """The subject `render` gives, without the body, the HTML or the calendar."""
    templates = templates or package_templates()
    locale = _locale(recipient)
    variables = _variables(request, recipient, agency_names, locale, portal_url)
    return templates.subject(request.kind, locale, variables)


REPLY_MAX = 500
"""Characters of the SMTP reply quoted in a delivery-failure notice."""


def render_delivery_failure(
    request: NotificationRequest,
    *,
    admin: Recipient,
    refused: RefusedDelivery,
    agency_names: Mapping[str, str],
    templates: MailTemplates | None = None,
    portal_url: str | None = None,
) -> RenderedMessage:
    """The notice telling an admin that `request` could not be delivered to one officer.

    It names the officer (name and ID) and quotes the server's reply, never the address:
    the admin finds it in the directory by the officer ID.
    """
    templates = templates or package_templates()
    locale = _locale(admin)
    variables = _variables(request, admin, agency_names, locale, portal_url)
    name, officer_id = one_line(refused.officer_name), one_line(refused.officer_id)
    variables.update(about_kind=request.kind.value, refused_name=name, refused_id=officer_id)
    facts = [
        ("refused_officer", f"{name} ({officer_id})"),
        ("server_reply", _shorten(one_line(refused.reply), REPLY_MAX)),
        *_facts(request, agency_names, templates, locale),
    ]
    return templates.render(NotificationKind.DELIVERY_FAILED, locale, variables, facts)


def render_no_recipient(
    request: NotificationRequest,
    *,
    admin: Recipient,
    agency_names: Mapping[str, str],
    templates: MailTemplates | None = None,
    portal_url: str | None = None,
) -> RenderedMessage:
    """The notice telling an admin that `request` reached nobody: no officer held its roles
    (e.g. an escalation to the head of an agency that has none in the directory)."""
    templates = templates or package_templates()
    locale = _locale(admin)
    variables = _variables(request, admin, agency_names, locale, portal_url)
    roles = [notify_text(role) for role in request.roles]
    variables.update(about_kind=request.kind.value, missing_roles=roles)
    words = templates._words(locale, {})
    shown = ", ".join(f"{one_line(str(words.role_name(role)))} ({role})" for role in roles)
    facts = [("missing_roles", shown), *_facts(request, agency_names, templates, locale)]
    return templates.render(NotificationKind.NO_RECIPIENT, locale, variables, facts)


def no_recipient_subject(
    request: NotificationRequest,
    *,
    admin: Recipient,
    agency_names: Mapping[str, str],
    templates: MailTemplates | None = None,
    portal_url: str | None = None,
) -> str:
    """The subject `render_no_recipient` gives (what `accord plan` lists)."""
    templates = templates or package_templates()
    locale = _locale(admin)
    variables = _variables(request, admin, agency_names, locale, portal_url)
    variables.update(
        about_kind=request.kind.value, missing_roles=[notify_text(role) for role in request.roles]
    )
    return templates.subject(NotificationKind.NO_RECIPIENT, locale, variables)


def message_id(business_key: str, email: str) -> str:
    """The same notification to the same address always has the same Message-ID, so a
    message sent twice after a crash is recognisable as a duplicate by mail clients."""
    digest = hashlib.sha256(f"{business_key}\n{email.lower()}".encode()).hexdigest()
    # 128 bits are unique enough and keep the header on one line (no folded Message-ID).
    return f"<{digest[:32]}@accord>"


def sender_address(sender: str) -> Address:
    """The `From` address of a setting such as 'Accord <accord@accord.example>'."""
    name, addr_spec = parseaddr(one_line(sender))
    if not addr_spec:
        raise ValueError(f"sender {sender!r} has no e-mail address")
    return Address(display_name=one_line(name), addr_spec=addr_spec)


# The message on the wire. Messages are written here as bytes, not with the email package's
# EmailMessage: building and flattening one cost about 2 ms of CPU per message (most of the
# mail activity's own time when a province's reminders fall due at once), writing it directly
# about a tenth of that. Every line is ASCII and ends with CRLF (nothing depends on the relay
# supporting 8BITMIME); bodies are quoted-printable, the calendar attachment base64.
#
# Non-ASCII header text is written as RFC 2047 encoded words, every space inside an encoded
# word, one word per folded line (CPython's own folder, up to 3.14, gh-144156, can drop the
# space between two encoded words, "kết quảcông tác", or add one). ASCII text is folded at
# spaces to 78 characters.

_WORD_BYTES = 42
"""UTF-8 bytes per encoded word: 56 base64 characters, 68 with the `=?utf-8?b?...?=` frame,
so that even `Subject: ` plus one word stays within the 78-character line limit."""

_LINE = 78
_CRLF = "\r\n"
_TOKENS = re.compile(r"\S+\s*|\s+")


def _chunks(text: str, limit: int) -> list[str]:
    """Pieces of at most `limit` UTF-8 bytes, cut after a space where possible: decoders that
    wrongly keep the fold between two encoded words then show a double space, not a split word.
    """
    chunks: list[str] = []
    chunk = ""
    for token in _TOKENS.findall(text):
        if len((chunk + token).encode()) <= limit:
            chunk += token
            continue
        if chunk:
            chunks.append(chunk)
            chunk = ""
        for char in token:  # a single token longer than a word: cut between characters
            if chunk and len((chunk + char).encode()) > limit:
                chunks.append(chunk)
                chunk = ""
            chunk += char
    if chunk:
        chunks.append(chunk)
    return chunks


def encoded_words(text: str) -> str:
    """`text` as RFC 2047 base64 encoded words, one per folded line."""
    return f"{_CRLF} ".join(
        f"=?utf-8?b?{base64.b64encode(chunk.encode()).decode('ascii')}?="
        for chunk in _chunks(text, _WORD_BYTES)
    )


def _folded_ascii(name: str, text: str) -> str:
    """`name: text` folded at spaces into lines of at most 78 characters; a word longer than
    a line (a long task ID) stays whole on a line of its own, as RFC 5322 allows up to 998."""
    lines: list[str] = []
    line = f"{name}:"
    for word in text.split(" "):
        if len(line) + 1 + len(word) > _LINE and not line.endswith(":"):
            lines.append(line)
            line = ""
        line += f" {word}"
    lines.append(line)
    return _CRLF.join(lines)


def _readable_as_is(text: str) -> bool:
    """ASCII that a reader will not take for encoded words (`=?...?=`)."""
    return text.isascii() and "=?" not in text


def _text_header(name: str, value: str) -> str:
    """An unstructured header (Subject, X-…), `value` already on one line."""
    if _readable_as_is(value):
        return _folded_ascii(name, value)
    return f"{name}: {encoded_words(value)}"


def _address_header(name: str, address: Address) -> str:
    # `Address` has validated the address and quotes an ASCII display name itself.
    if not address.addr_spec.isascii():
        raise ValueError(f"{name} address {address.addr_spec!r} is not ASCII")
    if not address.display_name:
        return f"{name}: {address.addr_spec}"
    if _readable_as_is(address.display_name):
        # Folded at spaces (inside a quoted name too: unfolding gives the same text back).
        return _folded_ascii(name, str(address))
    return f"{name}: {encoded_words(address.display_name)}{_CRLF} <{address.addr_spec}>"


def _quoted_printable(text: str) -> bytes:
    """UTF-8 text as quoted-printable lines (76 characters at most) ending with CRLF."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    encoded = binascii.b2a_qp(text.encode("utf-8"), quotetabs=False, istext=True, header=False)
    return encoded.replace(b"\n", b"\r\n")


def _boundary(message_id: str, part: str) -> str:
    """`=_` cannot occur in quoted-printable or base64 text, so no body line can be mistaken
    for the boundary. Derived from the Message-ID: the same message is the same bytes."""
    digest = hashlib.sha256(f"{message_id}/{part}".encode()).hexdigest()[:24]
    return f"=_accord_{part}_{digest}"


@dataclass(frozen=True)
class Composed:
    """A message ready for the SMTP DATA command."""

    subject: str
    """The subject as the recipient reads it (decoded)."""
    message_id: str
    data: bytes
    """The whole message: ASCII, CRLF line ends."""

    def parsed(self) -> EmailMessage:
        message = email.message_from_bytes(self.data, policy=SMTP)
        assert isinstance(message, EmailMessage)
        return message


def _compose(
    rendered: RenderedMessage,
    *,
    sender: str,
    recipient: Recipient,
    date: datetime,
    business_key: str,
    kind: NotificationKind,
    task: TaskRef,
    calendar: bytes | None = None,
) -> Composed:
    mid = message_id(business_key, recipient.email)
    # The display name is folded to one line first: no name can smuggle in a header of its own.
    to = Address(display_name=one_line(recipient.name), addr_spec=recipient.email)
    alternative = _boundary(mid, "alt")
    headers = [
        _address_header("From", sender_address(sender)),
        _address_header("To", to),
        _text_header("Subject", rendered.subject),
        # In the agreement's zone, as the body's times are (a notice stamped in UTC showed
        # "+0000" to a reader whose client prints the header as written).
        f"Date: {format_datetime(date.astimezone(_zone(task)))}",
        f"Message-ID: {mid}",
        # RFC 3834: vacation replies and other auto-responders do not answer Accord's mail.
        "Auto-Submitted: auto-generated",
        _text_header("X-Accord-Key", _ascii_header(business_key)),
        f"X-Accord-Kind: {kind.value}",
        _text_header("X-Accord-Task", _ascii_header(task.task_id)),
        _text_header("X-Accord-Agency", _ascii_header(task.agency)),
        "MIME-Version: 1.0",
    ]
    body: list[str | bytes] = [
        *_alternative_parts(alternative, rendered),
    ]
    if calendar is None:
        headers.append(f'Content-Type: multipart/alternative;{_CRLF} boundary="{alternative}"')
    else:
        mixed = _boundary(mid, "mixed")
        headers.append(f'Content-Type: multipart/mixed;{_CRLF} boundary="{mixed}"')
        body = [
            f"--{mixed}",
            f'Content-Type: multipart/alternative;{_CRLF} boundary="{alternative}"',
            "",
            *body,
            f"--{mixed}",
            'Content-Type: text/calendar; charset="utf-8"; method="PUBLISH"',
            "Content-Transfer-Encoding: base64",
            'Content-Disposition: attachment; filename="han-nop.ics"',
            "",
            base64.encodebytes(calendar).replace(b"\n", b"\r\n"),
            f"--{mixed}--",
            "",
        ]
    # A body's own last line break stays part of it: the CRLF before a boundary belongs to the
    # boundary (RFC 2046), so every piece, a body too, is followed by one more.
    lines: list[str | bytes] = [*headers, "", *body]
    data = b"\r\n".join(line if isinstance(line, bytes) else line.encode("ascii") for line in lines)
    return Composed(subject=rendered.subject, message_id=mid, data=data)


def compose_message(
    request: NotificationRequest,
    *,
    recipient: Recipient,
    agency_names: Mapping[str, str],
    sender: str,
    templates: MailTemplates | None = None,
    portal_url: str | None = None,
    attachments: Sequence[Attachment] = (),
) -> Composed:
    """A multipart/alternative (text + HTML) UTF-8 message to exactly one recipient; a
    reminder of a dated task also carries the deadline as an iCalendar event; a receipt lists
    `attachments` (the submission's)."""
    rendered = render(
        request,
        recipient=recipient,
        agency_names=agency_names,
        templates=templates,
        portal_url=portal_url,
        attachments=attachments,
    )
    calendar = None
    if request.kind is NotificationKind.REMINDER and request.task.due_at is not None:
        calendar = due_date_event(request, agency_names, templates)
    return _compose(
        rendered,
        sender=sender,
        recipient=recipient,
        date=request.scheduled_at,
        business_key=request.business_key,
        kind=request.kind,
        task=request.task,
        calendar=calendar,
    )


def build_message(
    request: NotificationRequest,
    *,
    recipient: Recipient,
    agency_names: Mapping[str, str],
    sender: str,
) -> EmailMessage:
    """`compose_message`, parsed (for reading, as a mail client would)."""
    return compose_message(
        request, recipient=recipient, agency_names=agency_names, sender=sender
    ).parsed()


def compose_delivery_failure(
    request: NotificationRequest,
    *,
    admin: Recipient,
    refused: RefusedDelivery,
    business_key: str,
    agency_names: Mapping[str, str],
    sender: str,
    at: datetime,
    templates: MailTemplates | None = None,
    portal_url: str | None = None,
) -> Composed:
    """The delivery-failure notice about `request` to one admin, under its own business key.

    The refused address appears in no header (nor in the key, which the caller derives from
    a hash of it): headers travel further than bodies, into logs and relays.
    """
    rendered = render_delivery_failure(
        request,
        admin=admin,
        refused=refused,
        agency_names=agency_names,
        templates=templates,
        portal_url=portal_url,
    )
    return _compose(
        rendered,
        sender=sender,
        recipient=admin,
        date=at,
        business_key=business_key,
        kind=NotificationKind.DELIVERY_FAILED,
        task=request.task,
    )


def compose_no_recipient(
    request: NotificationRequest,
    *,
    admin: Recipient,
    business_key: str,
    agency_names: Mapping[str, str],
    sender: str,
    templates: MailTemplates | None = None,
    portal_url: str | None = None,
) -> Composed:
    """The no-recipient notice about `request` to one admin, under its own business key,
    dated at the notification's own time (as the notice it stands for would have been)."""
    rendered = render_no_recipient(
        request, admin=admin, agency_names=agency_names, templates=templates, portal_url=portal_url
    )
    return _compose(
        rendered,
        sender=sender,
        recipient=admin,
        date=request.scheduled_at,
        business_key=business_key,
        kind=NotificationKind.NO_RECIPIENT,
        task=request.task,
    )


@dataclass(frozen=True)
class MailPart:
    """A non-text part of a message: an image shown inline in the HTML part (`content_id`
    set, referenced there as `cid:<content_id>`), or an attachment."""

    content_type: str
    filename: str
    """ASCII: the name a mail client saves the part under."""
    data: bytes
    content_id: str | None = None


def _alternative_parts(boundary: str, rendered: RenderedMessage) -> list[str | bytes]:
    """The plain-text and HTML parts of a message, closing their multipart/alternative."""
    qp = "Content-Transfer-Encoding: quoted-printable"
    return [
        f"--{boundary}",
        'Content-Type: text/plain; charset="utf-8"',
        qp,
        "",
        _quoted_printable(rendered.text),
        f"--{boundary}",
        'Content-Type: text/html; charset="utf-8"',
        qp,
        "",
        _quoted_printable(rendered.html),
        f"--{boundary}--",
        "",
    ]


def _base64_part(part: MailPart) -> list[str | bytes]:
    if not (part.filename.isascii() and '"' not in part.filename):
        raise ValueError(f"part file name {part.filename!r} must be ASCII without quotes")
    headers: list[str | bytes] = [
        f'Content-Type: {part.content_type}; name="{part.filename}"',
        "Content-Transfer-Encoding: base64",
    ]
    if part.content_id is not None:
        headers += [
            f"Content-ID: <{part.content_id}>",
            f'Content-Disposition: inline; filename="{part.filename}"',
        ]
    else:
        headers.append(f'Content-Disposition: attachment; filename="{part.filename}"')
    return [*headers, "", base64.encodebytes(part.data).replace(b"\n", b"\r\n")]


def compose_digest(
    rendered: RenderedMessage,
    *,
    sender: str,
    recipient: Recipient,
    date: datetime,
    business_key: str,
    agreement_id: str,
    time_zone: str,
    inline: list[MailPart],
    attachments: list[MailPart],
) -> Composed:
    """The compliance digest to one officer: multipart/mixed holding a multipart/related (the
    text and HTML alternatives, and the images the HTML shows by `cid:`) and the attachments.
    Headers as every Accord message's (Date in the agreement's zone, Auto-Submitted), with
    `X-Accord-Kind: digest` and the agreement instead of a task."""
    mid = message_id(business_key, recipient.email)
    to = Address(display_name=one_line(recipient.name), addr_spec=recipient.email)
    try:
        zone = ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        zone = ZoneInfo(DEFAULT_ZONE)
    mixed, related, alternative = (_boundary(mid, part) for part in ("mixed", "rel", "alt"))
    headers: list[str | bytes] = [
        _address_header("From", sender_address(sender)),
        _address_header("To", to),
        _text_header("Subject", rendered.subject),
        f"Date: {format_datetime(date.astimezone(zone))}",
        f"Message-ID: {mid}",
        "Auto-Submitted: auto-generated",
        _text_header("X-Accord-Key", _ascii_header(business_key)),
        "X-Accord-Kind: digest",
        _text_header("X-Accord-Agreement", _ascii_header(agreement_id)),
        "MIME-Version: 1.0",
        f'Content-Type: multipart/mixed;{_CRLF} boundary="{mixed}"',
    ]
    body: list[str | bytes] = [
        f"--{mixed}",
        f'Content-Type: multipart/related; type="multipart/alternative";{_CRLF}'
        f' boundary="{related}"',
        "",
        f"--{related}",
        f'Content-Type: multipart/alternative;{_CRLF} boundary="{alternative}"',
        "",
        *_alternative_parts(alternative, rendered),
    ]
    for part in inline:
        body += [f"--{related}", *_base64_part(part)]
    body += [f"--{related}--", ""]
    for part in attachments:
        body += [f"--{mixed}", *_base64_part(part)]
    body += [f"--{mixed}--", ""]
    lines: list[str | bytes] = [*headers, "", *body]
    data = b"\r\n".join(line if isinstance(line, bytes) else line.encode("ascii") for line in lines)
    return Composed(subject=rendered.subject, message_id=mid, data=data)


def build_delivery_failure(
    request: NotificationRequest,
    *,
    admin: Recipient,
    refused: RefusedDelivery,
    business_key: str,
    agency_names: Mapping[str, str],
    sender: str,
    at: datetime,
) -> EmailMessage:
    """`compose_delivery_failure`, parsed."""
    return compose_delivery_failure(
        request,
        admin=admin,
        refused=refused,
        business_key=business_key,
        agency_names=agency_names,
        sender=sender,
        at=at,
    ).parsed()


def due_date_event(
    request: NotificationRequest,
    agency_names: Mapping[str, str],
    templates: MailTemplates | None = None,
) -> bytes:
    """The deadline as an iCalendar event, so an officer can add it to any calendar app: an
    all-day event on the task's last day for a deadline at local midnight, a timed one at the
    due instant (in the agreement's zone, which the calendar carries) for a deadline later in
    a day. The UID is the task's, so a moved deadline updates the same event."""
    task = request.task
    assert task.due_at is not None
    zone = _zone(task)
    due = task.due_at.astimezone(zone)
    agency = one_line(agency_names.get(task.agency) or task.agency)
    from icalendar import Calendar, Event  # here: `accord plan` renders subjects only

    calendar = Calendar()
    calendar.add("prodid", "-//Accord//Hạn nộp báo cáo//VI")
    calendar.add("version", "2.0")
    calendar.add("method", "PUBLISH")
    event = Event()
    event.add("uid", f"{hashlib.sha256(task.task_id.encode()).hexdigest()[:32]}@accord")
    event.add("dtstamp", request.scheduled_at.astimezone(UTC))
    # Later notices of the same task carry a higher sequence, so calendar apps take the update.
    event.add("sequence", int(request.scheduled_at.timestamp() // 60) % 2**31)
    if due.time() == time.min:
        last_day = last_day_of(due, zone)
        event.add("dtstart", last_day)
        event.add("dtend", last_day + timedelta(days=1))
    else:
        # No DTEND: the event is the instant itself (RFC 5545, 3.6.1).
        event.add("dtstart", due)
    event.add("summary", one_line(f"Hạn nộp: {task.title} – {agency}"))
    description = [
        f"{one_line(task.document_number)} – {one_line(task.agreement_title)}",
        f"Kỳ báo cáo: {one_line(task.period_label)}",
        f"Hạn nộp: {(templates or package_templates()).due_text(due, zone, 'vi')}",
        f"Mã nhiệm vụ: {task.task_id}",
    ]
    if task.due_note_vi:
        description.append(one_line(task.due_note_vi))
    event.add("description", "\n".join(description))
    calendar.add_component(event)
    # A timed event names its zone (TZID); the definition goes along for apps that lack it.
    for tzid in sorted(calendar.get_missing_tzids()):
        timezone = _vtimezone(tzid)
        if timezone is not None:
            calendar.subcomponents.insert(len(calendar.timezones), timezone)
    return bytes(calendar.to_ical())


@functools.lru_cache(maxsize=16)
def _vtimezone(tzid: str) -> Timezone | None:
    """A zone's VTIMEZONE, as `Calendar.add_missing_timezones` builds it, built once: it walks
    the zone's transitions over decades (about 10 ms CPU, more than the rest of the message)."""
    try:
        from icalendar import Timezone

        return Timezone.from_tzid(tzid)
    except ValueError:
        return None
