"""The admin services behind the dashboard's admin pages and the CLI: residents, people
and rotas, users, devices, routines, and the audit log they all write."""
