{#
  v1 context types, plus each default context type (seed default_context_types)
  whose value v1 lacks, so v2 always offers the built-in execution modes.
  value stays unique: a value v1 holds twice keeps its first copy (system ones
  first, then by id) and the others are rejected.
#}
with

context_types as (

    select
        *,
        count(*) over (partition by context_type_id) as copies,
        row_number() over (partition by value order by is_system desc nulls last, context_type_id asc) as value_rank
    from {{ ref('stg_v1__context_types') }}

),

defaults as (

    select * from {{ ref('default_context_types') }}

),

domains as (

    select * from {{ ref('stg_v1__domains') }}

),

v1_start as (

    -- v1 kept no timestamps for context types: they date from the start of
    -- the person's v1 (its first domain), so a re-migration gives the same rows
    select coalesce(min(created_at), timestamptz 'epoch') as created_at from domains

),

checked as (

    select
        context_type_id as id,
        value,
        label,
        is_system,
        {{ verdict([
            reject_if_id_null_or_repeated('context_type_id', 'copies'),
            reject_if_null('value'),
            reject_if('value_rank > 1', 'duplicate_value', "'value ' || value || ' occurs more than once in v1'"),
            reject_if_null('label'),
            reject_if_null('is_system')
        ]) }}
    from context_types

),

added_defaults as (

    select
        defaults.id,
        defaults.value,
        defaults.label,
        defaults.is_system,
        null::text as reject_rule,
        null::text as reject_detail
    from defaults
    left join checked on defaults.value = checked.value and checked.reject_rule is null
    where checked.value is null

),

all_types as (

    select * from checked
    union all
    select * from added_defaults

),

dated as (

    select
        all_types.*,
        v1_start.created_at
    from all_types
    cross join v1_start

),

final as (

    select
        id,
        value,
        label,
        is_system,
        true as is_active,
        {{ sort_order(order_by='reject_rule is not null, is_system desc nulls last, value, id') }} as sort_order,
        created_at,
        created_at as updated_at,
        reject_rule,
        reject_detail,
        null::text as adjustment
    from dated

)

select * from final
