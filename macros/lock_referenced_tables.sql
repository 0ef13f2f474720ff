{#
  pre-hook of every mart: lock the tables its foreign keys reference, in name
  order, before the CREATE TABLE. Creating a foreign key takes a SHARE ROW
  EXCLUSIVE lock on the referenced table until commit; two marts built in
  parallel that reference the same parents in different orders deadlock.
  Taking them in one global order first makes that impossible.
#}
{% macro lock_referenced_tables() %}
    {%- set referenced = [] -%}
    {%- for constraint in model.constraints if constraint.type == 'foreign_key' and constraint.to -%}
        {%- if constraint.to not in referenced -%}
            {%- do referenced.append(constraint.to) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if referenced -%}
        lock table {{ referenced | sort | join(', ') }} in share row exclusive mode
    {%- endif -%}
{% endmacro %}
