{#
  The rejects policy: a v1 row kept out of v2 fails the build, one row per
  v1 table and rule, with its count, unless accepted on purpose
  (macros/loss_accepted.sql: scripts/migrate --accept-rejects in a build, the
  recorded acceptance of the live schema's run in `dbt test`); accepted rows
  stay listed in migration_rejects and in the report. Adjusted rows are in v2
  and never fail it.
#}
{%- set rejected -%}
    select
        v1_table,
        rule,
        count(*) as rejected_rows
    from {{ ref('migration_rejects') }} as rejects
    where action = 'rejected' and not {{ loss_accepted('rejects.v1_table', 'rejects.v1_id::text', 'rejects.rule') }}
    group by v1_table, rule
{%- endset -%}

{%- if execute -%}
    {%- for row in run_query(rejected) -%}
        {{ log("rejects_policy: " ~ row['v1_table'] ~ ": " ~ row['rejected_rows'] ~ " v1 rows rejected by rule "
            ~ row['rule'] ~ " (see migration_rejects; scripts/migrate --accept-rejects accepts them)", info=true) }}
    {%- endfor -%}
{%- endif -%}

{{ rejected }}
