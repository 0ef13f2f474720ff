{#
  Whether a known loss is accepted: a v1 row kept out of v2 (loss = its reject
  rule) or a files row whose blob was missing at the source (loss
  'blob_missing'). A build decides with var accept_rejects (scripts/migrate
  --accept-rejects). An invocation that validates v2 without writing it (`dbt
  test --vars '{marts_schema: public}'` on live v2) accepts what the build
  behind that schema accepted (its publish names it in build_run_id), as
  recorded in <meta_schema>.accepted_losses by ledger_build_finished: the accepted losses
  stay green, anything new fails.
#}
{% macro loss_accepted(v1_table, v1_id, loss) -%}
    {%- set meta = var('meta_schema') -%}
    {%- if var('accept_rejects') -%}
        true
    {%- elif not execute or is_writing_v2()
        or not adapter.get_relation(database=target.database, schema=meta, identifier='accepted_losses') -%}
        false
    {%- else -%}
        exists (
            select from {{ adapter.quote(meta) }}.accepted_losses as accepted
            inner join {{ adapter.quote(meta) }}.runs as publishes on accepted.run_id = publishes.build_run_id
            where
                publishes.published_schema_oid = to_regnamespace({{ sql_literal(where_v2_is()) }})::oid
                and accepted.v1_table = {{ v1_table }}
                and accepted.v1_id is not distinct from {{ v1_id }}
                and accepted.loss = {{ loss }}
        )
    {%- endif -%}
{%- endmacro %}
