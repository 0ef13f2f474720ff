with

bookmarks as (

    select * from {{ ref('bookmarks') }}

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
        null::text as not_representable,
        0 as load_order
    from bookmarks

)

select * from final
