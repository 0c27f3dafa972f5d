"""Administration pages, one blueprint "admin" at /admin: residents and their devices
(web.admin.residents), people, rotas and family invitations (web.admin.people), web users
(web.admin.users, admins only) and the audit log (web.admin.audit). Importing files is
web.imports (/admin/import).

A form with a problem is shown again with the message next to the field and status 400;
nothing is saved."""

# Importing the view modules registers their routes on the blueprint.
from web.admin import audit, people, residents, users  # noqa: F401
from web.admin.blueprint import bp

__all__ = ["bp"]
