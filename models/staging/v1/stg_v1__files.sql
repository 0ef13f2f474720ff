with

source as (

    select * from {{ source('v1', 'files') }}

),

renamed as (

    select
        cast(id as uuid) as file_id,
        cast(domain_id as uuid) as domain_id,
        cast(project_id as uuid) as project_id,
        cast(task_id as uuid) as task_id,
        cast(capture_id as uuid) as capture_id,
        cast(filename as text) as filename,
        cast(original_filename as text) as original_filename,
        cast(storage_path as text) as storage_path,
        cast(mime_type as text) as mime_type,
        cast(size_bytes as bigint) as size_bytes,
        cast(description as text) as description,
        cast(tags as text[]) as tags,
        cast(created_at as timestamptz) as created_at,
        cast(updated_at as timestamptz) as updated_at,
        to_jsonb(source) as v1_row
    from source

)

select * from renamed
