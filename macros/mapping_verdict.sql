{#
  The verdict of an int_ model row, built from checks that each yield
  array[rule, detail] when the row breaks them, or NULL. The first failing check
  wins: `verdict[1]` is the reject_rule, `verdict[2]` the reject_detail.

  A reference is checked against the parent's verdicts (`reference_verdicts`):
  - required (v1 NOT NULL or ON DELETE CASCADE): a dangling value rejects the row
    as orphan_fk, a value whose parent was rejected rejects it as parent_rejected,
    so rejection cascades as v1's own deletes would have;
  - nullable (v1 ON DELETE SET NULL): the value is set to NULL (`kept_reference`)
    and the row is `adjusted` (`reference_adjustment`), as v1 would have done.
#}

{% macro reference_verdicts(int_model) -%}
    select
        id,
        max(reject_rule) as reject_rule
    from {{ ref(int_model) }}
    group by id
{%- endmacro %}

{% macro check(rule, condition, detail) -%}
    case when {{ condition }} then array['{{ rule }}', {{ detail }}] end
{%- endmacro %}

{#
  A dump without its primary key may hold an id twice, or none: every copy of a
  repeated id is kept out (nothing tells which copy is right), and so is a NULL id.
#}
{% macro id_check(id_column, copies) -%}
    case
        when {{ id_column }} is null
            then array['missing_required', 'id is NULL; it is the primary key in v2']
        when {{ copies }} > 1
            then array[
                'duplicate_id',
                'the id occurs ' || {{ copies }} || ' times in v1 (no primary key); every copy is kept out'
            ]
    end
{%- endmacro %}

{% macro required_check(column) -%}
    {{ check('missing_required', column ~ ' is null', "'" ~ column ~ " is NULL; it is NOT NULL in v2'") }}
{%- endmacro %}

{% macro required_reference_check(column, parent) -%}
    case
        when {{ column }} is null
            then array['missing_required', '{{ column }} is NULL; it is NOT NULL in v2']
        when {{ parent }}.id is null
            then array['orphan_fk', '{{ column }} ' || {{ column }} || ' is not in v1 {{ parent }}']
        when {{ parent }}.reject_rule is not null
            then array[
                'parent_rejected',
                '{{ column }} ' || {{ column }} || ' was rejected (' || {{ parent }}.reject_rule || ')'
            ]
    end
{%- endmacro %}

{% macro kept_reference(column, parent) -%}
    case when {{ parent }}.id is not null and {{ parent }}.reject_rule is null then {{ column }} end
{%- endmacro %}

{% macro reference_adjustment(column, parent) -%}
    case
        when {{ column }} is not null and {{ parent }}.id is null
            then '{{ column }} ' || {{ column }} || ' is not in v1 {{ parent }}; set to NULL'
        when {{ column }} is not null and {{ parent }}.reject_rule is not null
            then '{{ column }} ' || {{ column }} || ' was rejected (' || {{ parent }}.reject_rule || '); set to NULL'
    end
{%- endmacro %}

{% macro adjustments(columns_and_parents) -%}
    nullif(concat_ws('; '
    {%- for column, parent in columns_and_parents -%}
        , {{ reference_adjustment(column, parent) }}
    {%- endfor -%}
    ), '')
{%- endmacro %}
