"""Privileges on live v2: the app's role and its rights, the replaced schema's grants carried over, and a
warning when no app role can reach the new live schema."""

from __future__ import annotations

from psycopg2 import sql

import lifeos_env
from lifeos.catalog import Cursor

# What the app's role gets on live v2, on its objects now and (default privileges) on those created later.
APP_PRIVILEGES = {"tables": "select, insert, update, delete", "sequences": "usage, select", "functions": "execute"}


def check_role(cur: Cursor, role: str) -> None:
    """Fail in one line when the app's role does not exist on the target server."""
    cur.execute("select count(*) from pg_roles where rolname = %s", (role,))
    if cur.fetchone()[0] == 0:
        raise lifeos_env.MigrationError(
            f"the app role {role} (--app-role / LIFEOS_APP_ROLE) does not exist on the target server"
        )


def grant_app_role(cur: Cursor, schema: str, role: str) -> None:
    """Grant the app's role what the app needs on `schema`, now and on objects created in it later."""
    check_role(cur, role)
    names = {"schema": sql.Identifier(schema), "role": sql.Identifier(role)}
    cur.execute(sql.SQL("grant usage on schema {schema} to {role}").format(**names))
    for kind, privileges in APP_PRIVILEGES.items():
        for grant in (
            "grant {privileges} on all {kind} in schema {schema} to {role}",
            "alter default privileges in schema {schema} grant {privileges} on {kind} to {role}",
        ):
            cur.execute(sql.SQL(grant).format(privileges=sql.SQL(privileges), kind=sql.SQL(kind), **names))


# One GRANT (or ALTER DEFAULT PRIVILEGES) per privilege any role but the owner held in schema %(old)s: on the
# schema, on each table, view, sequence and function that %(new)s holds under the same name, and by default.
CARRIED_PRIVILEGES = """
with grantable as (
    select 'schema ' || quote_ident(%(new)s) as object, n.nspowner as owner, n.nspacl as acl
    from pg_namespace n where n.nspname = %(old)s
    union all
    select case c.relkind when 'S' then 'sequence ' else 'table ' end || format('%%I.%%I', %(new)s, c.relname),
        c.relowner, c.relacl
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = %(old)s and c.relkind in ('r', 'p', 'v', 'm', 'f', 'S') and exists (
        select from pg_class t join pg_namespace tn on tn.oid = t.relnamespace
        where tn.nspname = %(new)s and t.relname = c.relname and t.relkind = c.relkind)
    union all
    select format('function %%I.%%I(%%s)', %(new)s, p.proname, pg_get_function_identity_arguments(p.oid)),
        p.proowner, p.proacl
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname = %(old)s and exists (
        select from pg_proc t join pg_namespace tn on tn.oid = t.pronamespace
        where tn.nspname = %(new)s and t.proname = p.proname
            and pg_get_function_identity_arguments(t.oid) = pg_get_function_identity_arguments(p.oid))
)
select format('grant %%s on %%s to %%s%%s', a.privilege_type, g.object,
    case a.grantee when 0 then 'public' else a.grantee::regrole::text end,
    case when a.is_grantable then ' with grant option' else '' end)
from grantable g cross join aclexplode(g.acl) a
where a.grantee <> g.owner
union all
select format('alter default privileges for role %%s in schema %%I grant %%s on %%s to %%s', d.defaclrole::regrole,
    %(new)s, a.privilege_type,
    case d.defaclobjtype when 'r' then 'tables' when 'S' then 'sequences' when 'f' then 'functions' else 'types' end,
    case a.grantee when 0 then 'public' else a.grantee::regrole::text end)
from pg_default_acl d join pg_namespace n on n.oid = d.defaclnamespace cross join aclexplode(d.defaclacl) a
where n.nspname = %(old)s
"""


def carry_over_privileges(cur: Cursor, old: str, new: str) -> None:
    """Give schema `new` the privileges schema `old` gave: an app that worked before a publish keeps working."""
    cur.execute(CARRIED_PRIVILEGES, {"old": old, "new": new})
    for (grant,) in cur.fetchall():
        cur.execute(grant)


def access_warning(cur: Cursor, live: str) -> list[str]:
    """A warning when no role but the owner may read live v2's tables."""
    cur.execute(
        "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " cross join aclexplode(c.relacl) a where n.nspname = %s and c.relkind in ('r', 'p')"
        " and a.grantee <> c.relowner and a.privilege_type = 'SELECT'",
        (live,),
    )
    if cur.fetchone()[0]:
        return []
    return [
        f"no application role has access to live v2 (schema {live}): name the app's role with --app-role ROLE"
        " (or LIFEOS_APP_ROLE)"
    ]
