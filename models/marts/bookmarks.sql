with

bookmarks as (

    select * from {{ ref('int_bookmarks') }}

),

final as (

    select
        id,
        domain_id,
        project_id,
        task_id,
        label,
        url,
        description,
        created_at,
        updated_at,
        folder_id,
        favicon_url,
        is_active,
        sort_order,
        tags
    from bookmarks
    where reject_rule is null

)

select * from final
