{#
  The verdict of an int_ model row: `reject_rule` and `reject_detail`, the rule and
  the offending value of the first rejection that applies, both NULL when none does.

      {{ verdict([
          reject_if_id_null_or_repeated('domain_id', 'copies'),
          reject_if_null('name'),
          reject_if('priority not between 1 and 4', 'out_of_range', "'priority ' || priority || ' is not 1-4'"),
      ]) }}

  Each reject_if* macro returns its rejections as (condition, rule, detail) SQL;
  `verdict` lists them, in order, in one CASE for the rule and one for the detail.

  A reference is checked against the parent's verdicts (`reference_verdicts`):
  - required (v1 NOT NULL or ON DELETE CASCADE): a dangling value rejects the row
    as orphan_fk, a value whose parent was rejected rejects it as parent_rejected,
    so rejection cascades as v1's own deletes would have
    (`reject_unless_parent_migrated`);
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

{#
  `<prefix>reject_rule` and `<prefix>reject_detail` of the first of `rejections` (lists
  of reject_if* results) whose condition holds; a prefix names a partial verdict.
#}
{% macro verdict(rejections, prefix='') -%}
    {%- set clauses = [] -%}
    {%- for rejection in rejections -%}
        {%- do clauses.extend(rejection) -%}
    {%- endfor -%}
    case
        {%- for condition, rule, detail in clauses %}
            when {{ condition }} then {{ rule }}
        {%- endfor %}
        end as {{ prefix }}reject_rule,
        case
        {%- for condition, rule, detail in clauses %}
            when {{ condition }} then {{ detail }}
        {%- endfor %}
        end as {{ prefix }}reject_detail
{%- endmacro %}

{% macro reject_if(condition, rule, detail) -%}
    {{ return([(condition, "'" ~ rule ~ "'", detail)]) }}
{%- endmacro %}

{#
  A dump without its primary key may hold an id twice, or none: every copy of a
  repeated id is kept out (nothing tells which copy is right), and so is a NULL id.
#}
{% macro reject_if_id_null_or_repeated(id_column, copies) -%}
    {{ return(
        reject_if(id_column ~ ' is null', 'missing_required', "'id is NULL; it is the primary key in v2'")
        + reject_if(copies ~ ' > 1', 'duplicate_id',
            "'the id occurs ' || " ~ copies ~ " || ' times in v1 (no primary key); every copy is kept out'")
    ) }}
{%- endmacro %}

{% macro reject_if_null(column) -%}
    {{ return(reject_if(column ~ ' is null', 'missing_required', "'" ~ column ~ " is NULL; it is NOT NULL in v2'")) }}
{%- endmacro %}

{# A required reference: the parent must be in v1 and not rejected. #}
{% macro reject_unless_parent_migrated(column, parent) -%}
    {{ return(
        reject_if_null(column)
        + reject_if(parent ~ '.id is null', 'orphan_fk',
            "'" ~ column ~ " ' || " ~ column ~ " || ' is not in v1 " ~ parent ~ "'")
        + reject_if(parent ~ '.reject_rule is not null', 'parent_rejected',
            "'" ~ column ~ " ' || " ~ column ~ " || ' was rejected (' || " ~ parent ~ ".reject_rule || ')'")
    ) }}
{%- endmacro %}

{# The partial verdict a row already has (e.g. `own_reject_rule`), kept where it stands in the order. #}
{% macro reject_as(rule_column, detail_column) -%}
    {{ return([(rule_column ~ ' is not null', rule_column, detail_column)]) }}
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
