{#
  Locks the tables `node`'s foreign keys reference, in one statement, in name
  order, before ALTER TABLE adds the keys and would lock them one by one in the
  order of its constraints. The marts are built in parallel and adding a FK
  takes a SHARE ROW EXCLUSIVE lock on the parent, so two marts that list their
  parents in different orders could deadlock; a single global order cannot.
#}
{% macro lock_referenced_tables(node) %}
    {%- set parents = [] -%}
    {%- for constraint in node.constraints if constraint.type == 'foreign_key' and constraint.to -%}
        {%- if constraint.to not in parents -%}
            {%- do parents.append(constraint.to) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if parents -%}
        lock table {{ parents | sort | join(', ') }} in share row exclusive mode;
    {%- endif -%}
{% endmacro %}
