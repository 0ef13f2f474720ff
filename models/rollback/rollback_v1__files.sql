{#
  files.storage_path back to v1: a row the migration brought from v1 whose
  storage_path v2 still holds gets v1's own value back (a bare key, <bucket>/<key>
  or a Storage URL, whichever v1 had); any other path under the storage root
  becomes the bare object key in the bucket (int_files' rule backwards), and its
  blob, which is on the v2 host only, is named in upload_blob_from. A path outside
  the storage root names no object v1 could serve: not representable.
#}
with

files as (

    select * from {{ ref('files') }}

),

int_files as (

    select * from {{ ref('int_files') }}

),

v1_files as (

    select * from {{ ref('stg_v1__files') }}

),

migrated as (

    select
        int_files.id,
        int_files.storage_path as v2_storage_path,
        v1_files.storage_path as v1_storage_path
    from int_files
    inner join v1_files on int_files.id = v1_files.file_id
    where int_files.reject_rule is null

),

located as (

    select
        files.*,
        files.storage_path = migrated.v2_storage_path as kept_from_v1,
        migrated.v1_storage_path,
        starts_with(files.storage_path, '{{ var("storage_root") }}/') as under_root
    from files
    left join migrated on files.id = migrated.id

),

final as (

    select
        id,
        domain_id,
        project_id,
        task_id,
        capture_id,
        filename,
        original_filename,
        case
            when kept_from_v1 then v1_storage_path
            when under_root then substr(storage_path, length('{{ var("storage_root") }}/') + 1)
        end as storage_path,
        mime_type,
        size_bytes,
        description,
        tags,
        created_at,
        updated_at,
        case
            when not coalesce(kept_from_v1, false) and not under_root
                then 'storage_path ' || storage_path || ' is not under the storage root {{ var("storage_root") }}'
        end as not_representable,
        0 as load_order,
        case when not coalesce(kept_from_v1, false) and under_root then storage_path end as upload_blob_from
    from located

)

select * from final
