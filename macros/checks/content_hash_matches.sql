{#
  Check 5, content: md5 of each of `columns` (note title and body, task title
  and description, capture raw_text, bookmark url and label) equals md5 of
  v1's value, for every row. Returns each differing id with the columns.
#}
{% macro content_hash_matches(model, v1_table, columns, renamed={}) %}
    {{ compare_with_v1(model, v1_table, columns, renamed, hashed=true) }}
{% endmacro %}
