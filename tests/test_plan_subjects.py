"""`accord plan` renders a subject once per notification and language when the subject
template names no recipient, and for each recipient when a province's override makes it name
one (directly, or through a wording macro it calls). Expectations are written out by hand
from the directory's officers and the override's own text."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from accord.plan import PlannedMail, plan
from activities.models import NotificationKind
from activities.templates import PACKAGE_TEMPLATES, MailTemplates
from agreements.loader import LoadedAgreement, load_agreement

ROOT = Path(__file__).resolve().parents[1]
PLAN_289 = ROOT / "agreements" / "quang-binh-2025-289-kh-ubnd.yaml"


@pytest.fixture(scope="module")
def loaded() -> LoadedAgreement:
    return load_agreement(PLAN_289)


def override(tmp_path: Path, files: dict[str, str]) -> MailTemplates:
    folder = tmp_path / "mail_templates"
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    templates = MailTemplates(folder)
    templates.load_all()
    return templates


def by_notice(mails: list[PlannedMail], kind: str) -> dict[tuple[str, str], list[PlannedMail]]:
    notices: dict[tuple[str, str], list[PlannedMail]] = defaultdict(list)
    for mail in mails:
        if mail.kind == kind:
            notices[(mail.at.isoformat(), mail.task)].append(mail)
    return notices


def officers_by_email(loaded: LoadedAgreement) -> dict[str, tuple[str, str]]:
    """address -> (name, locale), as the directory file gives them."""
    return {o.email: (o.name, o.locale or "vi") for o in loaded.directory.officers}


def test_package_subjects_per_recipient_only_where_they_read_copy() -> None:
    # Reminders, escalations and receipts say "Đồng gửi để biết" to a copied agency (`copy`,
    # true for that recipient alone); the no-recipient notice reads `about_kind`, which only
    # the admins' notices are given (not followed: per recipient); the other kinds' subjects
    # read no recipient variable.
    templates = MailTemplates()
    per_recipient = {
        NotificationKind.REMINDER,
        NotificationKind.ESCALATION,
        NotificationKind.RECEIPT,
        NotificationKind.NO_RECIPIENT,
    }
    for kind in NotificationKind:
        for locale in ("vi", "en"):
            assert templates.subject_per_recipient(kind, locale) == (kind in per_recipient)


def test_a_subject_naming_the_recipient_is_rendered_for_each(
    tmp_path: Path, loaded: LoadedAgreement
) -> None:
    templates = override(
        tmp_path,
        {
            "vi/escalation.txt.j2": '{% extends "package/vi/escalation.txt.j2" %}\n'
            "{% block subject %}[Accord] Gửi {{ recipient_name }}: {{ title }}{% endblock %}\n"
        },
    )
    assert templates.subject_per_recipient(NotificationKind.ESCALATION, "vi")

    report = plan(loaded, templates=templates)

    officers = officers_by_email(loaded)
    notices = by_notice(report.mails, "escalation")
    # Plan 289's escalation steps notify two roles each (focal point and head, ...).
    shared = [mails for mails in notices.values() if len(mails) >= 2]
    assert shared, "no escalation reaches two officers: the test would prove nothing"
    checked = 0
    for mails in notices.values():
        for mail in mails:
            name, locale = officers[mail.to[0]]
            if locale == "vi":
                title = mail.subject.split(": ", 1)[1]
                assert mail.subject == f"[Accord] Gửi {name}: {title}"
                checked += 1
    assert checked >= 2
    # Two officers of one escalation step read two different subjects.
    assert any(len({m.subject for m in mails}) >= 2 for mails in shared)


def test_a_wording_macro_naming_the_role_makes_subjects_per_recipient(
    tmp_path: Path, loaded: LoadedAgreement
) -> None:
    # The subject itself is the package's: `w.due_short(due)`, which calls `moment`; the
    # province's words make `moment` say which role the reader has.
    words = (PACKAGE_TEMPLATES / "vi" / "_words.txt.j2").read_text(encoding="utf-8")
    package_moment = "{% macro moment(m) %}{{ m.time }} ngày {{ m.day }}{% endmacro %}"
    assert package_moment in words
    words = words.replace(
        package_moment,
        "{% macro moment(m) %}{{ m.time }} ngày {{ m.day }} [{{ role }}]{% endmacro %}",
    )
    words = words.replace(
        "{% macro due_short(d) %}hạn trước {% if d.midnight %}{{ d.day }}",
        "{% macro due_short(d) %}hạn trước {% if false %}{{ d.day }}",
    )
    templates = override(tmp_path, {"vi/_words.txt.j2": words})
    assert templates.subject_per_recipient(NotificationKind.ESCALATION, "vi")
    # A subject calling no wording macro is not affected.
    assert not templates.subject_per_recipient(NotificationKind.WAIVED, "vi")

    report = plan(loaded, templates=templates)

    officers = officers_by_email(loaded)
    differ = 0
    for mails in by_notice(report.mails, "escalation").values():
        roles = set()
        for mail in mails:
            if officers[mail.to[0]][1] == "vi":
                # "... – hạn trước 00:00 ngày 15/07/2025 [focal_point]"
                assert mail.subject.endswith("]"), mail.subject
                roles.add(mail.subject.rsplit("[", 1)[1].rstrip("]"))
        assert roles <= {"focal_point", "head_of_agency", "aggregator", "provincial_leadership"}
        differ += len(roles) >= 2
    assert differ, "no escalation step read with two roles"


def test_an_override_naming_the_recipient_outside_the_subject_keeps_the_subjects(
    tmp_path: Path, loaded: LoadedAgreement
) -> None:
    templates = override(
        tmp_path,
        {
            "vi/reminder.txt.j2": '{% extends "package/vi/reminder.txt.j2" %}\n'
            "{% block note %}Đồng chí {{ recipient_name }} ({{ role }}) lưu ý.{% endblock %}\n"
        },
    )
    assert templates.subject_per_recipient(
        NotificationKind.REMINDER, "vi"
    ) == MailTemplates().subject_per_recipient(NotificationKind.REMINDER, "vi")

    assert plan(loaded, templates=templates).mails == plan(loaded).mails


@pytest.mark.parametrize(
    "subject",
    [
        "{% if owing %}[Cần nộp] {% endif %}{{ title }}",
        "{{ self.note() }}",  # another block: not followed
        '{% include "vi/_extra.txt.j2" %}',  # another template, given the context
        "{% set w2 = w %}{{ w2.due_short(due) }}",  # `w` passed around
    ],
)
def test_subjects_the_check_cannot_clear_are_rendered_per_recipient(
    tmp_path: Path, subject: str
) -> None:
    templates = override(
        tmp_path,
        {
            "vi/escalation.txt.j2": '{% extends "package/vi/escalation.txt.j2" %}\n'
            f"{{% block subject %}}{subject}{{% endblock %}}\n",
            "vi/_extra.txt.j2": "{{ recipient_name }}",
        },
    )

    assert templates.subject_per_recipient(NotificationKind.ESCALATION, "vi")
    assert not templates.subject_per_recipient(NotificationKind.EXTENSION_REQUESTED, "vi")
