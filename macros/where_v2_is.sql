{#
  Where v2 is, for an invocation that reads the marts without writing them
  (`dbt test`, `dbt docs generate`, `dbt compile`, `dbt show`): the shadow
  while it holds a build (after `dbt build`, or a rehearsal's), else live v2
  once a publish has renamed the shadow to it. Nothing to remember: `dbt test`
  after `scripts/migrate` validates live v2, after `dbt build` the build under
  review. `--vars '{marts_schema: ...}'` names the schema explicitly instead.

  dbt fixes schema names when it parses the project, and parsing reads no
  database; so the marts' nodes keep the schema var marts_schema names
  (generate_schema_name), and at run time `ref()` hands out the relation where
  v2 is (`ref` below: every test reads a mart through ref(), or through
  v2_relation). The state decides, not history: the shadow schema exists and
  holds tables, or it does not.
  A build (`dbt build`, `dbt run`) always reads and writes the shadow.
#}
{% macro where_v2_is() -%}
    {%- set named = var('marts_schema') -%}
    {%- if not execute or flags.WHICH in ('build', 'run')
        or 'marts_schema' in (invocation_args_dict.get('vars') or {}) -%}
        {{ return(named) }}
    {%- endif -%}
    {%- set found = run_query(
        "select s.nspname from unnest(array[" ~ sql_literal(named) ~ ", " ~ sql_literal(var('v2_schema'))
        ~ "]) with ordinality as s (nspname, rank) where exists (select from pg_class c"
        ~ " where c.relnamespace = to_regnamespace(quote_ident(s.nspname)) and c.relkind in ('r', 'p'))"
        ~ " order by s.rank limit 1"
    ) -%}
    {{ return(found.columns[0].values()[0] if found.rows else none) }}
{%- endmacro %}

{#
  `relation` where v2 is (`where`, else where_v2_is()), when it is one of the marts; any other relation as
  it is.
#}
{% macro v2_relation(relation, where=none) -%}
    {%- if execute and relation is not string and relation.schema == var('marts_schema') -%}
        {{ return(relation.incorporate(path={'schema': where or where_v2_is() or var('marts_schema')})) }}
    {%- endif -%}
    {{ return(relation) }}
{%- endmacro %}

{% macro ref() -%}
    {{ return(v2_relation(builtins.ref(*varargs, **kwargs))) }}
{%- endmacro %}

{#
  on-run-start of `dbt test`: when a selected test reads a mart and there is
  no v2 to validate (no build in the shadow, nothing published), say so in
  one line instead of an error per test.
#}
{% macro refuse_nothing_to_validate() -%}
    {%- set reads_v2 = [] -%}
    {%- if execute and flags.WHICH == 'test' -%}
        {%- for unique_id in selected_resources if unique_id in graph.nodes -%}
            {%- for parent in graph.nodes[unique_id].depends_on.nodes
                if parent in graph.nodes and graph.nodes[parent].config.schema == 'v2' -%}
                {%- do reads_v2.append(parent) -%}
            {%- endfor -%}
        {%- endfor -%}
    {%- endif -%}
    {%- if reads_v2 and where_v2_is() is none -%}
        {{ exceptions.raise_compiler_error(
            "nothing to validate: neither the shadow " ~ var('marts_schema') ~ " nor live v2 "
            ~ var('v2_schema') ~ " holds the v2 tables; run `dbt build` or scripts/migrate first"
        ) }}
    {%- endif -%}
{%- endmacro %}

{#
  `dbt docs generate` reads the marts' columns where v2 is too: dbt asks the
  catalog for the relations of the parsed nodes (the marts in var
  marts_schema), so each mart is looked up where v2 is and listed under the
  node's schema, which is how dbt matches catalog rows to nodes. Otherwise the
  query of dbt-postgres's own postgres__get_catalog_relations.
#}
{% macro postgres__get_catalog_relations(information_schema, relations) -%}
    {%- set named = var('marts_schema') -%}
    {%- set where = where_v2_is() or named -%}
    {%- call statement('catalog', fetch_result=True) -%}
        select
            {{ sql_literal(information_schema.database) }} as table_database,
            case when sch.nspname = {{ sql_literal(where) }} then {{ sql_literal(named) }} else sch.nspname end
                as table_schema,
            tbl.relname as table_name,
            case tbl.relkind when 'v' then 'VIEW' when 'm' then 'MATERIALIZED VIEW' else 'BASE TABLE' end
                as table_type,
            tbl_desc.description as table_comment,
            col.attname as column_name,
            col.attnum as column_index,
            pg_catalog.format_type(col.atttypid, col.atttypmod) as column_type,
            col_desc.description as column_comment,
            pg_get_userbyid(tbl.relowner) as table_owner
        from pg_catalog.pg_namespace as sch
        inner join pg_catalog.pg_class as tbl on sch.oid = tbl.relnamespace
        inner join pg_catalog.pg_attribute as col on tbl.oid = col.attrelid
        left join pg_catalog.pg_description as tbl_desc on tbl.oid = tbl_desc.objoid and tbl_desc.objsubid = 0
        left join pg_catalog.pg_description as col_desc
            on tbl.oid = col_desc.objoid and col.attnum = col_desc.objsubid
        where
            (
                {%- for relation in relations %}
                    {%- set schema = where if relation.schema == named else relation.schema %}
                    (sch.nspname = {{ sql_literal(schema) }}
                    {%- if relation.identifier %} and tbl.relname = {{ sql_literal(relation.identifier) }}{% endif -%})
                    {{- " or" if not loop.last }}
                {%- endfor %}
            )
            and not pg_is_other_temp_schema(sch.oid)
            and tbl.relpersistence in ('p', 'u')
            and tbl.relkind in ('r', 'v', 'f', 'p', 'm')
            and col.attnum > 0
            and not col.attisdropped
        order by sch.nspname, tbl.relname, col.attnum
    {%- endcall -%}
    {{ return(load_result('catalog').table) }}
{%- endmacro %}
