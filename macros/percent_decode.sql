{#
  Percent-decoding of an object key, in SQL: every %XX becomes its byte, the
  rest keeps its UTF-8 bytes, and the bytes are read back as UTF-8, so encoded
  multibyte characters (%C3%BC -> ü) come out whole. A result that is not valid
  UTF-8, or holds a NUL byte (%00), is NULL: such a key never becomes a path.
  A '%' not followed by two hex digits is kept as it is. A key without any '%'
  is its own decoding (text is valid UTF-8 without NUL), so only keys with a
  '%' take the byte-by-byte path. convert_from's result would carry the "C"
  collation of its `name` argument; it gets the default collation back.
#}
{% macro percent_decode(text_expr) -%}
    case when strpos({{ text_expr }}, '%') = 0 then {{ text_expr }} else (
        select
            case
                when {{ is_utf8_without_nul('decoded.bytes') }}
                    then convert_from(decoded.bytes, 'UTF8') collate "default"
            end
        from (
            select
                string_agg(
                    case
                        when piece.tokens[1] ~ '^%[0-9a-fA-F]{2}$' then decode(substr(piece.tokens[1], 2), 'hex')
                        else convert_to(piece.tokens[1], 'UTF8')
                    end,
                    ''::bytea order by piece.ordinal
                ) as bytes
            from regexp_matches({{ text_expr }}, '%[0-9a-fA-F]{2}|[^%]+|%', 'g')
                with ordinality as piece (tokens, ordinal)
        ) as decoded
    ) end
{%- endmacro %}

{#
  True when `bytes` is well-formed UTF-8 (RFC 3629: no overlongs, no surrogates,
  nothing above U+10FFFF) without a NUL byte, tested on its hex form.
#}
{% macro is_utf8_without_nul(bytes) -%}
    {%- set tail = '[89ab][0-9a-f]' -%}
    encode({{ bytes }}, 'hex') ~ '^(0[1-9a-f]|[1-7][0-9a-f]
        {{- '|c[2-9a-f]' ~ tail ~ '|d[0-9a-f]' ~ tail -}}
        {{- '|e0[ab][0-9a-f]' ~ tail ~ '|e[1-9a-cef]' ~ tail ~ tail ~ '|ed[89][0-9a-f]' ~ tail -}}
        {{- '|f0(9[0-9a-f]|[ab][0-9a-f])' ~ tail ~ tail ~ '|f[1-3]' ~ tail ~ tail ~ tail -}}
        {{- '|f48[0-9a-f]' ~ tail ~ tail -}}
    )*$'
{%- endmacro %}
