with

domains as (

    select
        *,
        count(*) over (partition by domain_id) as copies
    from {{ ref('stg_v1__domains') }}

),

checked as (

    select
        *,
        coalesce(
            {{ id_check('domain_id', 'copies') }},
            {{ required_check('name') }},
            {{ required_check('created_at') }}
        ) as verdict
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
        {{ sort_order(order_by='verdict is not null, created_at, domain_id') }} as sort_order,
        null::text as description,
        null::text as icon,
        verdict[1] as reject_rule,
        verdict[2] as reject_detail,
        null::text as adjustment
    from checked

)

select * from final
