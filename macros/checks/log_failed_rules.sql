{#
  on-run-end: for each failing mart_checks test, each rule that failed, with
  its row count and its first rows (problem, then the rest of the row), read
  from the rows the test stored: `dbt test` and `dbt build` name the rule and
  the rows, not only the node. Nothing to read when every test passed.
#}
{% macro log_failed_rules(results) %}
    {%- if execute -%}
        {%- for result in results if result.status == 'fail' and result.node.resource_type == 'test'
            and result.node.test_metadata and result.node.test_metadata.name == 'mart_checks' -%}
            {%- set table = result.node.attached_node.split('.')[-1] -%}
            {%- set failing = run_query(
                'select rule, rows, problem, (failing_row::jsonb - ''problem'')::text from ('
                ~ ' select *, count(*) over (partition by rule) as rows,'
                ~ ' row_number() over (partition by rule order by problem, failing_row::text) as n'
                ~ ' from ' ~ result.node.relation_name ~ ') as numbered where n <= 3 order by rule, n'
            ) -%}
            {%- for rule, rows, problem, failing_row in failing.rows -%}
                {%- if loop.first or rule != loop.previtem[0] -%}
                    {%- do log(table ~ ': rule ' ~ rule ~ ' failed on ' ~ rows ~ ' row' ~ ('s' if rows != 1 else '')
                        ~ ' (all in ' ~ result.node.relation_name ~ ')', info=true) -%}
                {%- endif -%}
                {%- do log('  ' ~ problem ~ ': ' ~ failing_row, info=true) -%}
            {%- endfor -%}
        {%- endfor -%}
    {%- endif -%}
{% endmacro %}
