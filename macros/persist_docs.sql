{#
  dbt's persist_docs, with fewer round trips per model: the relation's and its
  columns' comments in one statement (dbt runs two), and the relation's columns
  read back only for a model without an enforced contract, whose documented
  columns dbt checks against the relation (validate_doc_columns warns about any
  it lacks). A contracted model's build has just checked that its relation has
  exactly the contract's columns, which are the documented ones.
#}
{% macro postgres__persist_docs(relation, model, for_relation, for_columns) %}
    {%- set statements = [] -%}
    {%- if for_relation and config.persist_relation_docs() and model.description -%}
        {%- do statements.append(alter_relation_comment(relation, model.description)) -%}
    {%- endif -%}
    {%- if for_columns and config.persist_column_docs() and model.columns -%}
        {%- set columns = model.columns -%}
        {%- if not config.get('contract').enforced -%}
            {%- set existing = adapter.get_columns_in_relation(relation) | map(attribute='name') | list -%}
            {%- set columns = validate_doc_columns(relation, model.columns, existing) -%}
        {%- endif -%}
        {%- do statements.append(alter_column_comment(relation, columns)) -%}
    {%- endif -%}
    {%- if statements | join('') | trim -%}
        {%- do run_query(statements | join('\n')) -%}
    {%- endif -%}
{% endmacro %}

{#
  dbt-postgres's own, but without its second lookup of the relation's columns:
  its only caller, persist_docs, passes only documented columns the relation has.
#}
{% macro postgres__alter_column_comment(relation, column_dict) %}
    {% for column_name in column_dict %}
        {% set comment = column_dict[column_name]['description'] %}
        {% set escaped_comment = postgres_escape_comment(comment) %}
        comment on column {{ relation }}.{{ adapter.quote(column_name) if column_dict[column_name]['quote'] else column_name }} is {{ escaped_comment }};
    {% endfor %}
{% endmacro %}
