with

notes as (

    select * from {{ ref('int_notes') }}

),

final as (

    select
        id,
        domain_id,
        project_id,
        task_id,
        title,
        body,
        content_format,
        tags,
        created_at,
        updated_at,
        is_pinned,
        is_active,
        sort_order
    from notes
    where reject_rule is null

)

select * from final
