{#
  The rules of a mart_checks test (tests/generic/mart_checks.sql) as a dict,
  name -> arguments: an entry of `rules` is a rule's name (no arguments) or a
  mapping of one name to its arguments. A mart names each rule once, so a
  failing row's rule says which it is.
#}
{% macro mart_rules(rules) %}
    {%- set found = {} -%}
    {%- for entry in rules -%}
        {%- if entry is string -%}
            {%- set name, arguments = entry, {} -%}
        {%- elif entry is mapping and entry | length == 1 -%}
            {%- set name = entry.keys() | first -%}
            {%- set arguments = entry[name] or {} -%}
        {%- else -%}
            {{ exceptions.raise_compiler_error(
                "mart_checks: a rule is a name or {name: {argument: value}}, not " ~ entry) }}
        {%- endif -%}
        {%- if name in found -%}
            {{ exceptions.raise_compiler_error("mart_checks: rule " ~ name ~ " is listed twice") }}
        {%- endif -%}
        {%- do found.update({name: arguments}) -%}
    {%- endfor -%}
    {{ return(found) }}
{% endmacro %}

{# The arguments of the rule `rule_name` in the mart_checks test of the model `node`, or none. #}
{% macro attached_rule(node, rule_name) %}
    {%- if execute -%}
        {%- for test in graph.nodes.values() if test.resource_type == 'test'
            and test.attached_node == node.unique_id
            and test.test_metadata and test.test_metadata.name == 'mart_checks' -%}
            {%- set rules = mart_rules(test.test_metadata.kwargs.rules) -%}
            {%- if rule_name in rules -%}
                {{ return(rules[rule_name]) }}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return(none) }}
{% endmacro %}
