{#
  dbt's table materialization, but for a table that does not exist yet, which
  is created in place, under its own name: every mart (each invocation that
  builds a mart starts from an empty shadow schema, reset_shadow_schema). dbt's
  own would create `<name>__dbt_tmp`, rename it into place and drop a
  `__dbt_backup` that never existed, two macro calls of dbt's Python per model
  (8% of a scale-1 build's Python, bench/RESULTS.md). Otherwise as dbt's: the contract
  enforced by get_create_table_as_sql, the hooks (mart_post_hook), grants and
  persist_docs, in one transaction that a failure rolls back. A table that
  exists (the work schema's, rebuilt on each run) takes dbt's own path.
#}
{% materialization table, default %}
    {%- if load_cached_relation(this) is not none -%}
        {{ return(dbt.materialization_table_default()) }}
    {%- endif -%}
    {%- set target_relation = this.incorporate(type='table') -%}

    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}

    {%- call statement('main') -%}
        {{ get_create_table_as_sql(False, target_relation, sql) }}
    {%- endcall -%}
    {%- do create_indexes(target_relation) -%}

    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {%- do apply_grants(target_relation, config.get('grants'), should_revoke=False) -%}
    {%- do persist_docs(target_relation, model) -%}
    {{ adapter.commit() }}
    {{ run_hooks(post_hooks, inside_transaction=False) }}

    {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}
