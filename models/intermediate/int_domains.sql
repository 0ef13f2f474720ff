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
        {{ verdict([
            reject_if_id_null_or_repeated('domain_id', 'copies'),
            reject_if_null('name'),
            reject_if_null('created_at')
        ]) }}
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
