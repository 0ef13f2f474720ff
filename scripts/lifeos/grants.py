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


# One ALTER ... OWNER per object of schema %(new)s whose namesake in %(old)s has another owner: the schema, its
# tables, views, sequences (not those a column owns: they follow their table) and routines.
CARRIED_OWNERS = """
select format('alter schema %%I owner to %%s', %(new)s, o.nspowner::regrole)
from pg_namespace o join pg_namespace n on n.nspname = %(new)s
where o.nspname = %(old)s and o.nspowner <> n.nspowner
union all
select format('alter %%s %%I.%%I owner to %%s', case o.relkind when 'S' then 'sequence' when 'v' then 'view'
        when 'm' then 'materialized view' when 'f' then 'foreign table' else 'table' end,
    %(new)s, o.relname, o.relowner::regrole)
from pg_class o join pg_class n on n.relname = o.relname and n.relkind = o.relkind
where o.relnamespace = to_regnamespace(%(old)s) and n.relnamespace = to_regnamespace(%(new)s)
    and o.relkind in ('r', 'p', 'v', 'm', 'S', 'f') and o.relowner <> n.relowner
    and not exists (select from pg_depend d where d.classid = 'pg_class'::regclass and d.objid = n.oid
        and d.deptype in ('a', 'i'))
union all
select format('alter routine %%I.%%I(%%s) owner to %%s', %(new)s, o.proname,
    pg_get_function_identity_arguments(o.oid), o.proowner::regrole)
from pg_proc o join pg_proc n on n.proname = o.proname
    and pg_get_function_identity_arguments(n.oid) = pg_get_function_identity_arguments(o.oid)
where o.pronamespace = to_regnamespace(%(old)s) and n.pronamespace = to_regnamespace(%(new)s)
    and o.proowner <> n.proowner
"""


def carry_over_owners(cur: Cursor, old: str, new: str) -> None:
    """Give schema `new` and its objects the owners of their namesakes in `old`: the role that runs the app's
    schema migrations (ALTER TABLE ...) owns live v2 after a publish as before."""
    cur.execute(CARRIED_OWNERS, {"old": old, "new": new})
    for (statement,) in cur.fetchall():
        cur.execute(statement)


# The statements that make schema %(schema)s and everything in it the current role's, and no other role's: new
# owner first (ALTER ... OWNER also hands over the old owner's privileges), then one REVOKE per role any other
# privilege was granted to, and the schema's default privileges. (A routine's default EXECUTE for PUBLIC stays:
# without USAGE on the schema no one reaches it, and a rollback gives the schema back as it was.)
OPERATORS_ONLY = """
with objects as (
    select 'schema' as kind, quote_ident(nspname) as name, nspowner as owner,
        nspacl as acl
    from pg_namespace where nspname = %(schema)s
    union all
    select case relkind when 'S' then 'sequence' when 'v' then 'view' when 'm' then 'materialized view'
            when 'f' then 'foreign table' else 'table' end,
        oid::regclass::text, relowner, relacl
    from pg_class c
    where relnamespace = to_regnamespace(%(schema)s) and relkind in ('r', 'p', 'v', 'm', 'S', 'f')
        and not exists (select from pg_depend d where d.classid = 'pg_class'::regclass and d.objid = c.oid
            and d.deptype in ('a', 'i'))
    union all
    select 'routine', oid::regprocedure::text, proowner, proacl
    from pg_proc where pronamespace = to_regnamespace(%(schema)s)
)
select 1 as step, format('alter %%s %%s owner to current_user', kind, name) from objects
where owner <> (select oid from pg_roles where rolname = current_user)
union all
select distinct 2, format('revoke all on %%s %%s from %%s',
        case when kind in ('schema', 'sequence', 'routine') then kind else 'table' end, name,
        case a.grantee when 0 then 'public' else a.grantee::regrole::text end)
from objects cross join aclexplode(acl) a
where a.grantee not in (owner, (select oid from pg_roles where rolname = current_user))
union all
select distinct 3, format('alter default privileges for role %%s in schema %%I revoke all on %%s from %%s',
    d.defaclrole::regrole, %(schema)s, case d.defaclobjtype when 'r' then 'tables' when 'S' then 'sequences'
        when 'f' then 'functions' when 'n' then 'schemas' else 'types' end,
    case a.grantee when 0 then 'public' else a.grantee::regrole::text end)
from pg_default_acl d cross join aclexplode(d.defaclacl) a where d.defaclnamespace = to_regnamespace(%(schema)s)
order by 1
"""


def keep_for_the_operator(cur: Cursor, schema: str) -> None:
    """Make a kept schema (a backup, a rolled-back one) the operator's alone: the role running publish or rollback
    owns it and everything in it, and no other role keeps a privilege there, so neither the app nor anyone
    granted rights on live v2 can change what a rollback would bring back or clean-up finds kept in a dump."""
    cur.execute(OPERATORS_ONLY, {"schema": schema})
    for _, statement in cur.fetchall():
        cur.execute(statement)
