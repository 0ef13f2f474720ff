{#
  The rejects policy: a v1 row kept out of v2 fails the build, one row per
  v1 table and rule, with its count, unless var accept_rejects is true (they
  are then accepted on purpose and stay listed in migration_rejects and in
  the report). Adjusted rows are in v2 and never fail it.
#}
{%- set rejected -%}
    select
        v1_table,
        rule,
        count(*) as rejected_rows
    from {{ ref('migration_rejects') }}
    where action = 'rejected' and not {{ var('accept_rejects') }}
    group by v1_table, rule
{%- endset -%}

{%- if execute -%}
    {%- for row in run_query(rejected) -%}
        {{ log("rejects_policy: " ~ row['v1_table'] ~ ": " ~ row['rejected_rows'] ~ " v1 rows rejected by rule "
            ~ row['rule'] ~ " (see migration_rejects; --vars '{accept_rejects: true}' accepts them)", info=true) }}
    {%- endfor -%}
{%- endif -%}

{{ rejected }}
