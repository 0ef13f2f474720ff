{#
  pre-hook of every mart: lock the tables its foreign keys reference, in one
  statement, in name order, before CREATE TABLE locks them one by one in the
  order of its constraints. The marts are built in parallel and adding a FK
  takes a SHARE ROW EXCLUSIVE lock on the parent, so two marts that list their
  parents in different orders deadlocked; a single global order cannot.
#}
{% macro lock_referenced_tables() %}
    {%- set parents = [] -%}
    {%- for constraint in model.constraints if constraint.type == 'foreign_key' and constraint.to -%}
        {%- if constraint.to not in parents -%}
            {%- do parents.append(constraint.to) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if parents -%}
        lock table {{ parents | sort | join(', ') }} in share row exclusive mode
    {%- endif -%}
{% endmacro %}
