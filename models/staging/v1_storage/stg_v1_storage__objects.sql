{#
  A v1 schema without the inventory table (one written by scripts/generate_sample.py,
  or restored by hand) has no Storage objects: the view is then empty, with the
  same columns, and int_files reads every storage_path as written. scripts/migrate
  rebuilds this view on every run, so an inventory restored later is read.
#}
{%- set objects = source('v1_storage', 'storage_objects') %}

with

source as (

    {%- if not execute or adapter.get_relation(
        database=objects.database, schema=objects.schema, identifier=objects.identifier) is not none %}
        select * from {{ objects }}
    {%- else %}
        select
            cast(null as uuid) as id,
            cast(null as text) as bucket_id,
            cast(null as text) as name,
            cast(null as jsonb) as metadata
        where false
    {%- endif %}

),

renamed as (

    select
        cast(id as uuid) as object_id,
        cast(bucket_id as text) as bucket_id,
        cast(name as text) as object_key,
        cast(metadata as jsonb) as metadata
    from source

)

select * from renamed
