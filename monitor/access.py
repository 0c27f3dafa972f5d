"""Who may see and do what: the one place the role rules live. Every list, count, export
and API answer is narrowed by a `Scope`, so a volunteer sees only the buildings they cover
and a family member only their own relative, whatever page or endpoint asks; a phone link's
holder is held to the same rules (`person_scope`).

Roles: admin (everything, including users and imports), staff (the whole community:
residents, routines, devices, alerts), volunteer (residents of their buildings; may claim
and resolve their alerts), family (their relative only, read-only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, false, select, true
from sqlalchemy.orm import Session

from monitor.models import Person, Resident, User

STAFF_ROLES = ("admin", "staff")
# The actor of what curtainwatch does by itself (resolving an alert the facts answered).
SYSTEM_ACTOR = "curtainwatch"


@dataclass(frozen=True)
class Scope:
    role: str
    actor: str  # what claims, notes and the audit log record: person id or "user:<name>"
    buildings: tuple[str, ...] = ()
    resident_id: str | None = None

    @property
    def sees_all(self) -> bool:
        return self.role in STAFF_ROLES

    @property
    def can_act(self) -> bool:
        """Claim, resolve and annotate alerts of residents in scope."""
        return self.role in ("admin", "staff", "volunteer")

    @property
    def can_edit(self) -> bool:
        """Change residents, routines, away periods, devices, people and rotas."""
        return self.role in STAFF_ROLES

    @property
    def is_admin(self) -> bool:
        """Manage users and import files."""
        return self.role == "admin"

    def residents(self, resident_id: Any) -> ColumnElement[bool]:
        """A WHERE clause keeping rows whose resident column is in scope."""
        col = resident_id
        if self.sees_all:
            return true()
        if self.role == "volunteer":
            if not self.buildings:
                return false()
            return col.in_(select(Resident.id).where(Resident.building.in_(self.buildings)))
        if self.role == "family" and self.resident_id:
            return col == self.resident_id
        return false()

    def buildings_clause(self, building: Any) -> ColumnElement[bool]:
        """A WHERE clause on a building column (for lists of buildings)."""
        if self.sees_all:
            return true()
        if self.role == "volunteer" and self.buildings:
            return building.in_(self.buildings)
        if self.role == "family" and self.resident_id:
            return building.in_(select(Resident.building).where(Resident.id == self.resident_id))
        return false()

    def covers(self, building: str | None) -> bool:
        """Whether this scope acts for the residents of `building`, for an alert in hand (the
        rule `residents` puts in SQL): staff cover every building, and alerts about no
        resident (None, system alerts) too; a volunteer covers their buildings; family none
        (they follow one relative, read-only)."""
        if self.sees_all:
            return True
        return self.role == "volunteer" and building is not None and building in self.buildings

    def may_see(self, session: Session, resident_id: str) -> bool:
        found = session.scalar(
            select(Resident.id).where(Resident.id == resident_id, self.residents(Resident.id))
        )
        return found is not None


def scope_for(session: Session, user: User) -> Scope:
    """The scope of a signed-in user. A volunteer or family user whose person is gone (or
    never linked) sees nothing rather than everything."""
    actor = user.person_id or f"user:{user.username}"
    person = session.get(Person, user.person_id) if user.person_id else None
    if user.role == "volunteer":
        buildings = tuple(str(b) for b in (person.buildings if person else []))
        return Scope("volunteer", actor, buildings=buildings)
    if user.role == "family":
        return Scope("family", actor, resident_id=person.resident_id if person else None)
    return Scope(user.role, actor)


def person_scope(person: Person) -> Scope:
    """The scope of a person acting through a link made out to them (the phone page), by their
    role on the community list; they act as themselves (their person id)."""
    if person.role == "volunteer":
        buildings = tuple(str(b) for b in person.buildings or [])
        return Scope("volunteer", person.id, buildings=buildings)
    if person.role == "family":
        return Scope("family", person.id, resident_id=person.resident_id)
    return Scope(person.role, person.id)
