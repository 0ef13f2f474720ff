with

domains as (

    select * from {{ ref('stg_v1__domains') }}

),

checked as (

    select
        *,
        case
            when name is null then 'missing_required'
        end as reject_rule,
        case
            when name is null then 'name is NULL; v2 domains.name is NOT NULL'
        end as reject_detail
    from domains

),

final as (

    select
        domain_id as id,
        name,
        color,
        created_at,
        created_at as updated_at,
        true as is_active,
        {{ sort_order(order_by='reject_rule is not null, created_at, domain_id') }} as sort_order,
        null::text as description,
        null::text as icon,
        reject_rule,
        reject_detail,
        null::text as adjustment
    from checked

)

select * from final
