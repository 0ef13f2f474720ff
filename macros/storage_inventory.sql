{#
  The object names of the app's bucket in v1's storage.objects inventory
  (source v1_storage.storage_objects), one column `name`, each name once. A v1
  schema without the inventory (one written by scripts/generate_sample.py)
  gives no names; a unit test's fixture (a CTE: no database) is read as given.
#}
{% macro storage_inventory() -%}
    {%- set objects = source('v1_storage', 'storage_objects') -%}
    {%- if not execute or objects.database is none or adapter.get_relation(
        database=objects.database, schema=objects.schema, identifier=objects.identifier) %}
        select distinct name from {{ objects }}
        where bucket_id = '{{ var("storage_bucket") }}'
    {%- else %}
        select null::text as name
        where false
    {%- endif %}
{%- endmacro %}
