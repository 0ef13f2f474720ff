{#
  post-hook of every mart, derived from its YAML contract so nothing is declared twice:
  - an index <table>_<column>_idx on every foreign-key column, and on is_active,
    which every list query of the app filters on (soft delete);
  - a table with an updated_at column gets trigger <table>_set_updated_at, which
    keeps it current. The function is named through the table's own schema,
    which the publish step renames as a whole.
#}
{% macro mart_post_hook() %}
    {%- set indexed = [] -%}
    {%- for constraint in model.constraints if constraint.type == 'foreign_key' -%}
        {%- for column in constraint.columns if column not in indexed -%}
            {%- do indexed.append(column) -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- if 'is_active' in model.columns -%}
        {%- do indexed.append('is_active') -%}
    {%- endif -%}
    {%- for column in indexed %}
        create index {{ this.identifier }}_{{ column }}_idx on {{ this }} ({{ column }});
    {%- endfor %}
    {%- if 'updated_at' in model.columns %}
        create trigger {{ this.identifier }}_set_updated_at
            before update on {{ this }}
            for each row execute function {{ adapter.quote(this.schema) }}.set_updated_at();
    {%- endif -%}
{% endmacro %}
