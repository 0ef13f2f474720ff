{#
  dbt's table and seed materializations create the indexes of the config key
  `indexes`, read with config.get('indexes'). The marts declare their extra
  indexes under config.meta.indexes instead (mart_post_hook creates them with
  the keys), and dbt warns on every mart that config.get found the key only
  under meta. This reads the node's own config, where a model or seed that
  sets `indexes` still has them created, without that fallback.
#}
{% macro postgres__create_indexes(relation) -%}
    {%- for index in model.config.get('indexes') or [] -%}
        {%- do run_query(get_create_index_sql(relation, index)) -%}
    {%- endfor -%}
{%- endmacro %}
