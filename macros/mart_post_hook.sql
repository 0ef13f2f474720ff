{#
  post-hook of every mart, derived from its YAML contract so nothing is declared twice:
  - the keys of contract_keys() (primary key, unique, foreign keys), added in
    one ALTER TABLE now that the rows are in, after locking the parents;
  - the indexes of contract_indexes(): <table>_<column>_idx on every foreign-key
    column, and on is_active, which every list query of the app filters on
    (soft delete), plus those the model declares in config.meta.indexes;
  - the triggers of contract_triggers() (macros/app_triggers.sql): updated_at,
    polymorphic references, cycles ... Their functions are named through the
    table's own schema, which the publish step renames as a whole.
#}
{% macro mart_post_hook() %}
    {%- set keys = contract_keys(model, this) -%}
    {%- if keys %}
        {{ lock_referenced_tables(model) }}
        alter table {{ this }}
            {{ keys | join(',\n            ') }};
    {%- endif %}
    {%- for index in contract_indexes(model) %}
        create {{ 'unique ' if index.unique }}index {{ index.name }} on {{ this }}
            {%- if index.using %} using {{ index.using }}{% endif %} ({{ index.columns | join(', ') }})
            {%- if index.where %} where {{ index.where }}{% endif %};
    {%- endfor %}
    {%- for trigger in contract_triggers(model) %}
        {{ create_trigger(trigger, this) }}
    {%- endfor -%}
{% endmacro %}

{#
  The indexes a mart's contract implies, as dicts (name, columns, unique, using,
  where): one per foreign-key column and on is_active, named
  <table>_<column>_idx, then each entry of the model's config.meta.indexes.
  mart_post_hook creates them; the test catalog_matches_contract checks them.
#}
{% macro contract_indexes(node) %}
    {%- set indexes = [] -%}
    {%- set indexed = [] -%}
    {%- for constraint in node.constraints if constraint.type == 'foreign_key' -%}
        {%- for column in constraint.columns if column not in indexed -%}
            {%- do indexed.append(column) -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- if 'is_active' in node.columns -%}
        {%- do indexed.append('is_active') -%}
    {%- endif -%}
    {%- for column in indexed -%}
        {%- do indexes.append({'name': node.alias ~ '_' ~ column ~ '_idx', 'columns': [column]}) -%}
    {%- endfor -%}
    {%- for index in node.config.meta.get('indexes', []) -%}
        {%- do indexes.append(index) -%}
    {%- endfor -%}
    {{ return(indexes) }}
{% endmacro %}
