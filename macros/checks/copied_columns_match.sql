{#
  Column-level reconciliation, in the spirit of audit-helper's
  compare_relations: every Copy (and Rename) column of the model equals v1's
  value, row by row, in one pass. `columns` are v2 names; `renamed` maps a v2
  name to its v1 name (target_date: due_date). Returns each differing id with
  the names of the columns that differ.
#}
{% macro copied_columns_match(model, v1_table, columns, renamed={}) %}
    {{ compare_with_v1(model, v1_table, columns, renamed, hashed=false) }}
{% endmacro %}
