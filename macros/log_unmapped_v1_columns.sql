{#
  on-run-end: says in the build output which v1 columns the plan does not map
  (model v1_unmapped_columns), one line each, so drift is never dropped silently.
#}
{% macro log_unmapped_v1_columns() %}
    {%- if execute and is_writing_v2() -%}
        {%- set relation = adapter.get_relation(
            database=target.database, schema=target.schema, identifier='v1_unmapped_columns'
        ) -%}
        {%- if relation -%}
            {%- set unmapped = run_query(
                'select v1_table, column_name, data_type from ' ~ relation ~ ' order by 1, 2'
            ) -%}
            {%- for table, column, data_type in unmapped.rows -%}
                {%- do log(
                    'UNMAPPED v1 column ' ~ table ~ '.' ~ column ~ ' (' ~ data_type ~ '): '
                    ~ 'the plan maps it nowhere; its values are not in v2',
                    info=True
                ) -%}
            {%- endfor -%}
        {%- endif -%}
    {%- endif -%}
{% endmacro %}
