with

files as (

    select * from {{ ref('int_files') }}

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
        storage_path,
        mime_type,
        size_bytes,
        description,
        tags,
        created_at,
        updated_at,
        note_id,
        is_active,
        sort_order
    from files
    where reject_rule is null

)

select * from final
