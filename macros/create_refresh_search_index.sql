{#
  post-hook of search_index: creates refresh_search_index() beside the table,
  whose body is the model's own compiled query, so the index is defined once.
  The app calls `select refresh_search_index();` after it writes tasks, notes,
  bookmarks, projects or capture (or on a schedule); it replaces every row in
  one transaction, so readers see the old index until it commits.
  BEGIN ATOMIC (PostgreSQL 14+) stores the body parsed, bound to the tables
  themselves rather than their names: it keeps working after publish renames
  the shadow schema to the live one.
#}
{% macro create_refresh_search_index() %}
    create function {{ adapter.quote(this.schema) }}.refresh_search_index() returns void
    language sql
    begin atomic
        delete from {{ this }};
        {%- set columns = model.columns.keys() | join(', ') %}
        insert into {{ this }} ({{ columns }})
        select {{ columns }} from ({{ model.compiled_code }}) as documents;
    end;
    comment on function {{ adapter.quote(this.schema) }}.refresh_search_index() is
        'Rebuilds search_index from tasks, notes, bookmarks, projects and capture; call after writing them.';
{% endmacro %}
