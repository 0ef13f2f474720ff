{#
  on-run-end: for each failing mart_checks test, each rule that failed, with
  its row count and its first rows (problem, then the rest of the row), read
  from the rows the test stored; the same for each mart the failing
  catalog_matches_contract test names: `dbt test` and `dbt build` name the
  rule and the rows, not only the node. Nothing to read when every test passed.
#}
{% macro log_failed_rules(results) %}
    {%- if execute -%}
        {%- for result in results if result.status == 'fail' and result.node.resource_type == 'test' -%}
            {%- if result.node.test_metadata and result.node.test_metadata.name == 'mart_checks' -%}
                {%- set mart_and_rule = "'" ~ result.node.attached_node.split('.')[-1] ~ "' as mart, rule" -%}
            {%- elif result.node.name == 'catalog_matches_contract' -%}
                {%- set mart_and_rule = "mart, 'catalog_matches_contract' as rule" -%}
            {%- else -%}
                {%- set mart_and_rule = none -%}
            {%- endif -%}
            {%- if mart_and_rule -%}
                {%- set failing = run_query(
                    'select mart, rule, rows, problem, (failing_row::jsonb - ''problem'')::text from ('
                    ~ ' select *, count(*) over (partition by mart, rule) as rows,'
                    ~ ' row_number() over (partition by mart, rule order by problem, failing_row::text) as n'
                    ~ ' from (select ' ~ mart_and_rule ~ ', problem, failing_row from ' ~ result.node.relation_name
                    ~ ') as stored) as numbered where n <= 3 order by mart, rule, n'
                ) -%}
                {%- for mart, rule, rows, problem, failing_row in failing.rows -%}
                    {%- if loop.first or (mart, rule) != (loop.previtem[0], loop.previtem[1]) -%}
                        {%- do log(mart ~ ': rule ' ~ rule ~ ' failed on ' ~ rows ~ ' row'
                            ~ ('s' if rows != 1 else '') ~ ' (all in ' ~ result.node.relation_name ~ ')', info=true) -%}
                    {%- endif -%}
                    {%- do log('  ' ~ problem ~ ': ' ~ failing_row, info=true) -%}
                {%- endfor -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
{% endmacro %}
