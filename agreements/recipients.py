"""Whom a notification's roles reach: the rule, over any list of officers.

The mail activity applies it to the officers it reads from the database at send time;
`accord plan` applies it to the officers of the agreement's directory file. Pure: no database,
no directory loading, no addresses made up. A role reaches:

- focal point: the owing agency's officers with the focal-point role;
- head of agency: the owing agency's heads;
- aggregator: the focal points of the agency that receives the deliverable (nobody if none);
- provincial leadership: officers with that role anywhere in the owing agency's province (in
  any province when the owing agency is unknown);
- `{leadership_of: CODE}`: the officers of agency CODE holding the provincial-leadership or
  the head role (reached in the provincial-leadership role);
- copy: the focal points of the agencies the obligation is copied to (`copy_to`).

A joint task (several owners) reaches the focal points and heads of every owner, the leading
agency's first.

Each address receives one message, in the role it was first reached by, in role order, and
within a role in the order the officers are given (by officer ID, as the database reads them).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from agreements.models import LeadershipOf, NotifyTarget, OfficerRole, RecipientRole

T = TypeVar("T")


@dataclass(frozen=True)
class RoleScope:
    """One role asked for, as officers hold it: which officer role, in which agency (None:
    anywhere in the owing agency's province)."""

    role: RecipientRole
    officer_role: OfficerRole
    agency: str | None


@dataclass(frozen=True)
class Holder:
    """What the rule needs to know about an officer."""

    agency: str
    province: str | None
    roles: Collection[str]
    email: str


def role_scopes(
    roles: Iterable[NotifyTarget],
    *,
    agency: str,
    recipient: str | None,
    co_owners: Sequence[str] = (),
    copy_to: Sequence[str] = (),
) -> list[RoleScope]:
    """The officer roles and agencies that `roles` stand for, for a task of `agency` (and of
    `co_owners`, when it is a joint one) whose deliverable goes to `recipient` and is copied
    to `copy_to`."""
    owners = (agency, *co_owners)
    scopes: list[RoleScope] = []
    for role in roles:
        match role:
            case LeadershipOf(leadership_of=body):
                leadership = RecipientRole.PROVINCIAL_LEADERSHIP
                scopes.append(RoleScope(leadership, OfficerRole.PROVINCIAL_LEADERSHIP, body))
                scopes.append(RoleScope(leadership, OfficerRole.HEAD, body))
            case RecipientRole.FOCAL_POINT:
                scopes.extend(RoleScope(role, OfficerRole.FOCAL_POINT, a) for a in owners)
            case RecipientRole.HEAD_OF_AGENCY:
                scopes.extend(RoleScope(role, OfficerRole.HEAD, a) for a in owners)
            case RecipientRole.COPY:
                scopes.extend(RoleScope(role, OfficerRole.FOCAL_POINT, a) for a in copy_to)
            case RecipientRole.AGGREGATOR:
                if recipient is not None:
                    scopes.append(RoleScope(role, OfficerRole.FOCAL_POINT, recipient))
            case RecipientRole.PROVINCIAL_LEADERSHIP:
                scopes.append(RoleScope(role, OfficerRole.PROVINCIAL_LEADERSHIP, None))
    return scopes


def pick_recipients(
    scopes: Sequence[RoleScope], officers: Sequence[tuple[T, Holder]], province: str | None
) -> list[tuple[T, RecipientRole]]:
    """The officers the scopes reach, one per address (compared without case), each with the
    role it is reached in. `officers` may hold more than the scopes need; `province` is the
    owing agency's (None when it is not in the directory)."""
    seen: set[str] = set()
    chosen: list[tuple[T, RecipientRole]] = []
    for scope in scopes:
        wanted, agency = scope.officer_role.value, scope.agency
        for officer, holder in officers:
            if wanted not in holder.roles:
                continue
            if agency is not None and holder.agency != agency:
                continue
            if agency is None and province is not None and holder.province != province:
                continue
            address = holder.email.lower()
            if address in seen:
                continue
            seen.add(address)
            chosen.append((officer, scope.role))
    return chosen


JOINT_SEPARATOR = "+"
"""Between the owners' codes in a joint task's ID segment (`SNV+STP`)."""


def owing(active: Sequence[str], *, jointly: bool) -> list[tuple[str, str, list[str]]]:
    """The tasks one period of an obligation gives its active owners, as (ID segment, leading
    agency, co-owners): one per agency, or one joint task led by the first (directory order)."""
    if jointly and active:
        return [(JOINT_SEPARATOR.join(active), active[0], list(active[1:]))]
    return [(agency, agency, []) for agency in active]
