"""Issue 13's agreement forms on a small agreement of our own (`forms/`): agencies that begin
(`active_from`) and communes (`kind: commune`), joint reports (`owners.jointly`), copies
(`copy_to`) and the leadership of one named body (`{leadership_of: CODE}`).

Expected task IDs, dates and recipients are written out by hand from the files and the
calendar, never computed with Accord's expansion."""

from __future__ import annotations

import json
import re
import shutil
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from accord.cli import main
from accord.plan import ScriptedSubmission, plan
from agreements.loader import load_agreement
from agreements.models import (
    Agency,
    AgencyKind,
    EscalationStep,
    LeadershipOf,
    Obligation,
    RecipientRole,
)
from agreements.recipients import Holder, pick_recipients, role_scopes

FORMS = Path(__file__).parent / "forms"
AGREEMENT = FORMS / "forms-2025.yaml"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "agreement-format.md"
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZONE)


def mail(domain_user: str) -> str:
    return f"{domain_user}@mau.example"


FOCAL_SNV, FOCAL_STP = mail("dau-moi.snv"), mail("dau-moi.stp")
HEAD_SNV, HEAD_STP = mail("giam-doc.snv"), mail("giam-doc.stp")
COPIES = [mail("dau-moi-2.btgdv"), mail("dau-moi.btgdv")]  # BTGDV's two focal points
UBND_LEADER, UBND_CHAIR = mail("lanh-dao.ubnd-tinh"), mail("chu-tich.ubnd-tinh")
PARTY_LEADER = mail("lanh-dao.tinh-uy")
FOCAL_UBND = mail("dau-moi.ubnd-tinh")


# --------------------------------------------------------------------------------------------
# 6 and 14: agencies that begin, communes


def test_communes_begin_and_the_district_ceases_by_the_last_day() -> None:
    loaded = load_agreement(AGREEMENT)
    assert loaded.directory.agency("XA_A").kind is AgencyKind.COMMUNE  # type: ignore[union-attr]
    monthly = {
        o.task_id: o.due_at for o in loaded.occurrences if o.obligation_id == "bao-cao-thang"
    }
    # Rule "before the 1st of June, July, August 2025", over groups ubnd_cap_huyen + ubnd_cap_xa:
    # - June: 1/6 is a Sunday, so the last day (Sat 31/5) moves to Monday 2/6: due 3/6 00:00.
    #   Only HUYEN_X (active until 15/6); the communes begin on 1/7.
    # - July: due 1/7 00:00, last day Monday 30/6: HUYEN_X has ceased (15/6) and the communes,
    #   whose first day is 1/7, did not exist on the last day: no task for anyone, although the
    #   due instant's own date is their first day.
    # - August: due 1/8 00:00 (Friday), last day 31/7: both communes, none for HUYEN_X.
    assert monthly == {
        "mau-2025/bao-cao-thang/HUYEN_X/2025-6": at("2025-06-03T00:00"),
        "mau-2025/bao-cao-thang/PHUONG_B/2025-8": at("2025-08-01T00:00"),
        "mau-2025/bao-cao-thang/XA_A/2025-8": at("2025-08-01T00:00"),
    }


def test_an_agency_whose_first_day_is_the_last_day_owes_the_task(tmp_path: Path) -> None:
    shutil.copy(FORMS / "directory.yaml", tmp_path / "directory.yaml")
    text = AGREEMENT.read_text(encoding="utf-8")
    assert 'month: "6-8"\n      day: 1\n' in text
    moved = tmp_path / "forms-2025.yaml"
    moved.write_text(text.replace('month: "6-8"\n      day: 1\n', "month: 7\n      day: 2\n"))
    monthly = {
        o.task_id for o in load_agreement(moved).occurrences if o.obligation_id == "bao-cao-thang"
    }
    # Before 2 July 2025 (a Wednesday): the last day is Tuesday 1/7, the communes' first day.
    assert monthly == {
        "mau-2025/bao-cao-thang/PHUONG_B/2025-7",
        "mau-2025/bao-cao-thang/XA_A/2025-7",
    }


def test_active_until_before_active_from_is_refused() -> None:
    with pytest.raises(ValueError, match=r"active_until \(2025-06-30\) is before active_from"):
        Agency.model_validate(
            {
                "code": "XA_C",
                "name": "Ủy ban nhân dân xã C",
                "kind": "commune",
                "active_from": "2025-07-01",
                "active_until": "2025-06-30",
            }
        )


# --------------------------------------------------------------------------------------------
# 7, 8, 13: joint report, copies, leadership of one body


def test_a_joint_report_is_one_task_of_both_owners() -> None:
    loaded = load_agreement(AGREEMENT)
    joint = [o for o in loaded.occurrences if o.obligation_id == "bao-cao-chung"]
    # Owners written [STP, SNV]; the ID lists them in directory order (SNV first), so it does
    # not change when the YAML list is reordered.
    assert [(o.task_id, o.agency, o.co_owners, o.copy_to, o.due_at) for o in joint] == [
        ("mau-2025/bao-cao-chung/SNV+STP/2025", "SNV", ["STP"], ["BTGDV"], at("2025-05-15T00:00"))
    ]


def _joint_mails(submissions: list[ScriptedSubmission]) -> list[tuple[str, str, str, bool]]:
    report = plan(load_agreement(AGREEMENT), submissions=submissions)
    return [
        (
            m.at.isoformat(),
            m.kind,
            m.to[0],
            "Đồng gửi để biết" in m.subject or "Copy for information" in m.subject,
        )
        for m in report.mails
        if m.task == "mau-2025/bao-cao-chung/SNV+STP/2025"
    ]


def test_joint_report_reminds_every_owner_copies_and_escalates_to_one_leadership() -> None:
    # Due 15/5/2025 00:00 (Thursday). Reminder 3d: Monday 12/5 07:30. Steps: 1d → Friday 16/5
    # 07:30 to both heads; 5d → Tuesday 20/5 07:30 to UBND_TINH's leaders (its
    # provincial-leadership officer and its head), not the Party committee's leader. Every
    # notice also goes to BTGDV's two focal points, marked as a copy.
    expected = sorted(
        [
            *[("2025-05-12T07:30:00+07:00", "reminder", a, False) for a in (FOCAL_SNV, FOCAL_STP)],
            *[("2025-05-12T07:30:00+07:00", "reminder", a, True) for a in COPIES],
            *[("2025-05-16T07:30:00+07:00", "escalation", a, False) for a in (HEAD_SNV, HEAD_STP)],
            *[("2025-05-16T07:30:00+07:00", "escalation", a, True) for a in COPIES],
            *[
                ("2025-05-20T07:30:00+07:00", "escalation", a, False)
                for a in (UBND_LEADER, UBND_CHAIR)
            ],
            *[("2025-05-20T07:30:00+07:00", "escalation", a, True) for a in COPIES],
        ]
    )
    got = sorted(_joint_mails([]))
    assert got == expected
    assert PARTY_LEADER not in {address for _, _, address, _ in got}


def test_joint_report_receipt_goes_to_owners_aggregator_and_copies() -> None:
    # Submitted Wednesday 14/5 09:00: after the 12/5 reminder, before the due instant.
    got = sorted(_joint_mails([ScriptedSubmission.parse("mau-2025/bao-cao-chung/*@2025-05-14")]))
    assert got == sorted(
        [
            *[("2025-05-12T07:30:00+07:00", "reminder", a, False) for a in (FOCAL_SNV, FOCAL_STP)],
            *[("2025-05-12T07:30:00+07:00", "reminder", a, True) for a in COPIES],
            *[
                ("2025-05-14T09:00:00+07:00", "receipt", a, False)
                for a in (FOCAL_SNV, FOCAL_STP, FOCAL_UBND)
            ],
            *[("2025-05-14T09:00:00+07:00", "receipt", a, True) for a in COPIES],
        ]
    )


def _holder(agency: str, *roles: str) -> tuple[str, Holder]:
    email = f"{agency.lower()}-{'-'.join(roles)}@mau.example"
    return email, Holder(agency=agency, province="Tỉnh Mẫu", roles=set(roles), email=email)


def test_recipient_rule_for_owners_copies_and_leadership() -> None:
    officers = [
        _holder("A", "focal_point"),
        _holder("A", "head"),
        _holder("B", "focal_point"),
        _holder("B", "head"),
        _holder("C", "focal_point"),
        _holder("C", "head"),
        _holder("UBND", "provincial_leadership"),
        _holder("UBND", "head"),
        _holder("TU", "provincial_leadership"),
    ]

    def reached(*roles: RecipientRole | LeadershipOf) -> list[tuple[str, RecipientRole]]:
        scopes = role_scopes(roles, agency="A", recipient=None, co_owners=["B"], copy_to=["C"])
        return pick_recipients(scopes, officers, "Tỉnh Mẫu")

    assert reached(RecipientRole.FOCAL_POINT, RecipientRole.COPY) == [
        ("a-focal_point@mau.example", RecipientRole.FOCAL_POINT),
        ("b-focal_point@mau.example", RecipientRole.FOCAL_POINT),
        ("c-focal_point@mau.example", RecipientRole.COPY),
    ]
    assert reached(RecipientRole.HEAD_OF_AGENCY) == [
        ("a-head@mau.example", RecipientRole.HEAD_OF_AGENCY),
        ("b-head@mau.example", RecipientRole.HEAD_OF_AGENCY),
    ]
    # The bare role still reaches every provincial leader; leadership_of only that body's.
    assert reached(RecipientRole.PROVINCIAL_LEADERSHIP) == [
        ("ubnd-provincial_leadership@mau.example", RecipientRole.PROVINCIAL_LEADERSHIP),
        ("tu-provincial_leadership@mau.example", RecipientRole.PROVINCIAL_LEADERSHIP),
    ]
    assert reached(LeadershipOf(leadership_of="UBND")) == [
        ("ubnd-provincial_leadership@mau.example", RecipientRole.PROVINCIAL_LEADERSHIP),
        ("ubnd-head@mau.example", RecipientRole.PROVINCIAL_LEADERSHIP),
    ]


def test_existing_notify_lists_keep_their_meaning() -> None:
    step = EscalationStep.model_validate(
        {"after": "5d", "notify": ["head_of_agency", {"leadership_of": "UBND_TINH"}]}
    )
    assert step.notify == [RecipientRole.HEAD_OF_AGENCY, LeadershipOf(leadership_of="UBND_TINH")]
    with pytest.raises(ValueError):
        EscalationStep.model_validate({"after": "5d", "notify": [{"leadership": "UBND_TINH"}]})


# --------------------------------------------------------------------------------------------
# The documentation's examples load


def _section_examples() -> list[object]:
    text = DOCS.read_text(encoding="utf-8")
    start = text.index("## Agencies that begin and cease")
    end = text.index("\n## ", start + 1)
    blocks = re.findall(r"```yaml\n(.*?)```", text[start:end], re.DOTALL)
    assert len(blocks) == 5
    return [yaml.safe_load(block) for block in blocks]


def test_documented_examples_are_valid() -> None:
    kinds = set()
    for example in _section_examples():
        assert isinstance(example, dict)
        if "agencies" in example:
            for agency in example["agencies"]:
                kinds.add(Agency.model_validate(agency).kind)
        for obligation in example.get("reporting", []):
            Obligation.model_validate(obligation)
        for step in example.get("escalation", []):
            EscalationStep.model_validate(step)
    assert AgencyKind.COMMUNE in kinds


def test_accord_schema_describes_the_new_forms_with_an_example(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def described(args: list[str]) -> dict[str, str]:
        assert main(["schema", *args]) == 0
        defs = json.loads(capsys.readouterr().out)["$defs"]
        return {
            f"{model}.{name}": field.get("description", "")
            for model, body in defs.items()
            for name, field in body.get("properties", {}).items()
        }

    agreement, directory = described([]), described(["--directory"])
    new_fields = {
        "Owners.jointly": agreement,
        "Obligation.copy_to": agreement,
        "Obligation.extension_approver": agreement,
        "LeadershipOf.leadership_of": agreement,
        "EscalationStep.notify": agreement,
        "ReminderPolicy.notify": agreement,
        "Agency.active_from": directory,
        "Agency.kind": directory,
    }
    for field, descriptions in new_fields.items():
        assert "e.g." in descriptions[field], field
    assert "leadership_of" in agreement["EscalationStep.notify"]
    assert "commune" in directory["Agency.kind"]
