{#
  Every validation rule of one mart as one data test and one query: the union
  of each rule's failing rows, each row with its rule (column rule), its
  problem in words and the whole failing row as json (failing_row). dbt pays
  about 45 ms of Python and a round trip per node, so a mart's rules cost one
  node, not one each. `rules` lists them as the mart's YAML names them: an
  entry is a rule's name, or {name: {argument: value ...}} (macro mart_rules);
  the argument `where` checks only the mart's rows that satisfy it. Each rule
  is a macro of macros/checks/ of the same name. The failing rows are stored
  (store_failures), so scripts/report and the on-run-end log_failed_rules name
  each failing rule and its rows. A rule switched off by a var is listed in
  the node's config.meta.rules_not_checked: file_blobs_verified with
  --vars '{files_checked: false}' (a run without the files step), which the
  report shows as "not checked", never as passed. Rule
  catalog_matches_contract, which takes no argument and reads only the
  catalog, checks every mart at once in the singular test of that name
  (tests/catalog_matches_contract.sql).
#}
{% test mart_checks(model, rules) %}
    {#- the rules, each a macro of the same name (called by name below, so dbt finds them), with the
        arguments it cannot do without; and those a var of this invocation switches off -#}
    {%- set needs = {
        'reconcile_row_count': ['v1_table'], 'reconcile_ids': ['v1_table'], 'foreign_keys_resolve': [],
        'file_blobs_verified': [], 'content_hash_matches': ['v1_table', 'columns'],
        'hierarchy_matches_v1': ['v1_table'], 'copied_columns_match': ['v1_table', 'columns'],
        'acyclic': ['child_column', 'parent_column'],
        'polymorphic_reference_resolves': ['column_name', 'id_column', 'entity_types']} -%}
    {%- set switched_off = [] if var('files_checked') else ['file_blobs_verified'] -%}
    {%- set checked = [] -%}
    {%- set not_checked = [] -%}
    {%- for name, arguments in mart_rules(rules).items() -%}
        {%- if name not in needs -%}
            {{ exceptions.raise_compiler_error(
                model.identifier ~ ": no rule " ~ name ~ " (the rules: " ~ needs | join(', ') ~ ")") }}
        {%- elif needs[name] | reject('in', arguments) | list -%}
            {{ exceptions.raise_compiler_error(
                model.identifier ~ ": rule " ~ name ~ " needs argument "
                ~ needs[name] | reject('in', arguments) | join(', ')) }}
        {%- elif name in switched_off -%}
            {%- do not_checked.append(name) -%}
        {%- else -%}
            {%- do checked.append((name, arguments)) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ config(store_failures=true, meta={'rules_not_checked': not_checked}) }}

    {%- for name, arguments in checked %}
        {%- set where = arguments.get('where') %}
        {%- set relation = '(select * from ' ~ model ~ ' where ' ~ where ~ ') as dbt_subquery' if where else model %}
        {%- set rule_arguments = {} %}
        {%- for key, value in arguments.items() if key != 'where' %}
            {%- do rule_arguments.update({key: value}) %}
        {%- endfor %}
    select
        '{{ name }}'::text as rule,
        failures.problem::text as problem,
        row_to_json(failures) as failing_row
    from (
        {%- if name == 'reconcile_row_count' %}
            {{ reconcile_row_count(relation, **rule_arguments) }}
        {%- elif name == 'reconcile_ids' %}
            {{ reconcile_ids(relation, **rule_arguments) }}
        {%- elif name == 'foreign_keys_resolve' %}
            {{ foreign_keys_resolve(relation, **rule_arguments) }}
        {%- elif name == 'file_blobs_verified' %}
            {{ file_blobs_verified(relation, **rule_arguments) }}
        {%- elif name == 'content_hash_matches' %}
            {{ content_hash_matches(relation, **rule_arguments) }}
        {%- elif name == 'hierarchy_matches_v1' %}
            {{ hierarchy_matches_v1(relation, **rule_arguments) }}
        {%- elif name == 'copied_columns_match' %}
            {{ copied_columns_match(relation, **rule_arguments) }}
        {%- elif name == 'acyclic' %}
            {{ acyclic(relation, **rule_arguments) }}
        {%- elif name == 'polymorphic_reference_resolves' %}
            {{ polymorphic_reference_resolves(relation, **rule_arguments) }}
        {%- endif %}
    ) as failures
    {% if not loop.last %}union all{% endif %}
    {%- else %}
    select
        null::text as rule,
        null::text as problem,
        null::json as failing_row
    where false
    {%- endfor %}

{% endtest %}
