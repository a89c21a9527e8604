"""The raw requests of the differential test (tests/it/differential.rs).

Each is (name, bytes). Every request targets `/upload`, which each party
proxies to a backend that reads the whole body, so a framing error shows
in the answer. Most close the connection after one request, so a reader
can stop at EOF; the smuggling payloads pipeline a second request, and
only the answer to the first is compared.

Besides the RFC 9110 / 9112 MUSTs (docs/strict-http.md), the list holds
the kinds of payload the HTTP Garden project (narfindustries/http-garden)
lists among its findings: CL/TE combinations, chunk extensions, bare LF
and CR, whitespace in and around field names, `0x` and signed lengths,
NUL bytes, obs-fold, and HTTP/1.0 with a transfer coding.
"""

H = b"Host: a\r\n"
C = b"Connection: close\r\n"


def req(line=b"GET /upload HTTP/1.1", fields=H + C, body=b""):
    return line + b"\r\n" + fields + b"\r\n" + body


def post(fields, body):
    return req(b"POST /upload HTTP/1.1", H + C + fields, body)


def chunked(body):
    return post(b"Transfer-Encoding: chunked\r\n", body)


SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"

PAYLOADS = [
    # -- well-formed, to show every party accepts the plain cases
    ("ok_get", req()),
    ("ok_post_length", post(b"Content-Length: 5\r\n", b"hello")),
    ("ok_post_chunked", chunked(b"5\r\nhello\r\n0\r\n\r\n")),
    ("ok_http10_without_host", req(b"GET /upload HTTP/1.0", b"")),
    ("ok_absolute_form", req(b"GET http://a/upload HTTP/1.1")),
    ("ok_leading_empty_line", b"\r\n" + req()),
    ("ok_obs_text_in_value", req(fields=H + C + b"X-Name: caf\xe9\r\n")),
    ("ok_empty_value", req(fields=H + C + b"X-Empty:\r\n")),
    ("ok_length_leading_zeros", post(b"Content-Length: 005\r\n", b"hello")),
    ("ok_length_trailing_space", post(b"Content-Length: 5 \r\n", b"hello")),
    ("ok_chunk_size_uppercase_hex", chunked(b"A\r\n0123456789\r\n0\r\n\r\n")),
    ("ok_chunk_size_leading_zeros", chunked(b"005\r\nhello\r\n0\r\n\r\n")),
    ("ok_chunk_extension", chunked(b"5;a=b\r\nhello\r\n0\r\n\r\n")),
    ("ok_chunk_extension_quoted", chunked(b'5;a="b c"\r\nhello\r\n0\r\n\r\n')),
    ("ok_chunk_extension_bws", chunked(b"5 ;a\r\nhello\r\n0\r\n\r\n")),
    ("ok_trailer", chunked(b"5\r\nhello\r\n0\r\nX-T: y\r\n\r\n")),
    ("ok_te_case", post(b"Transfer-Encoding: ChUnKeD\r\n", b"5\r\nhello\r\n0\r\n\r\n")),
    # -- request line
    ("line_http09", b"GET /upload\r\n\r\n"),
    ("line_version_lowercase", req(b"GET /upload http/1.1")),
    ("line_version_1_10", req(b"GET /upload HTTP/1.10")),
    ("line_version_2_0", req(b"GET /upload HTTP/2.0")),
    ("line_version_3_0", req(b"GET /upload HTTP/3.0")),
    ("line_version_junk", req(b"GET /upload HTTP/1.1x")),
    ("line_space_in_target", req(b"GET /upload y HTTP/1.1")),
    ("line_nul_in_target", req(b"GET /upload\x00 HTTP/1.1")),
    ("line_ctl_in_target", req(b"GET /upload\x01y HTTP/1.1")),
    ("line_obs_text_in_target", req(b"GET /caf\xe9 HTTP/1.1")),
    ("line_bad_method_char", req(b"G(T /upload HTTP/1.1")),
    ("line_nul_in_method", req(b"G\x00T /upload HTTP/1.1")),
    ("line_bare_cr", req(b"GET /upload\rHTTP/1.1")),
    ("line_trailing_space", req(b"GET /upload HTTP/1.1 ")),
    ("line_empty_target", req(b"GET  HTTP/1.1")),
    ("line_connect_origin_form", req(b"CONNECT /upload HTTP/1.1")),
    ("line_asterisk_get", req(b"GET * HTTP/1.1")),
    ("line_too_long", req(b"GET /" + b"a" * 70000 + b" HTTP/1.1")),
    # -- Host
    ("host_missing", req(fields=C)),
    ("host_twice", req(fields=H + H + C)),
    ("host_two_values", req(fields=b"Host: a, b\r\n" + C)),
    ("host_invalid", req(fields=b"Host: a/b\r\n" + C)),
    ("host_userinfo", req(fields=b"Host: u@a\r\n" + C)),
    ("host_missing_absolute_form", req(b"GET http://a/upload HTTP/1.1", C)),
    # -- field names and values
    ("name_space_before_colon", req(fields=H + C + b"X-A : b\r\n")),
    ("name_tab_before_colon", req(fields=H + C + b"X-A\t: b\r\n")),
    ("name_space_inside", req(fields=H + C + b"X A: b\r\n")),
    ("name_empty", req(fields=H + C + b": b\r\n")),
    ("name_bad_char", req(fields=H + C + b"X(A): b\r\n")),
    ("name_nul", req(fields=H + C + b"X\x00A: b\r\n")),
    ("name_obs_text", req(fields=H + C + b"X\xe9: b\r\n")),
    ("line_without_colon", req(fields=H + C + b"X-A b\r\n")),
    ("value_nul", req(fields=H + C + b"X-A: a\x00b\r\n")),
    ("value_bare_cr", req(fields=H + C + b"X-A: a\rb\r\n")),
    ("value_ctl", req(fields=H + C + b"X-A: a\x01b\r\n")),
    ("value_del", req(fields=H + C + b"X-A: a\x7fb\r\n")),
    ("obs_fold", req(fields=H + C + b"X-A: a\r\n b\r\n")),
    ("whitespace_before_first_field", req(b"GET /upload HTTP/1.1\r\n X-A: b", H + C)),
    ("header_too_long", req(fields=H + C + b"X-A: " + b"a" * 70000 + b"\r\n")),
    # -- line endings
    ("bare_lf_everywhere", b"GET /upload HTTP/1.1\nHost: a\nConnection: close\n\n"),
    ("bare_lf_after_line", b"GET /upload HTTP/1.1\nHost: a\r\nConnection: close\r\n\r\n"),
    ("bare_cr_line_end", b"GET /upload HTTP/1.1\r\nHost: a\rX-A: b\r\nConnection: close\r\n\r\n"),
    # -- Content-Length forms
    ("cl_list_same", post(b"Content-Length: 5, 5\r\n", b"hello")),
    ("cl_list_differ", post(b"Content-Length: 5, 6\r\n", b"hello!")),
    ("cl_twice_same", post(b"Content-Length: 5\r\nContent-Length: 5\r\n", b"hello")),
    ("cl_twice_differ", post(b"Content-Length: 5\r\nContent-Length: 6\r\n", b"hello!")),
    ("cl_plus", post(b"Content-Length: +5\r\n", b"hello")),
    ("cl_minus", post(b"Content-Length: -5\r\n", b"hello")),
    ("cl_hex", post(b"Content-Length: 0x5\r\n", b"hello")),
    ("cl_huge", post(b"Content-Length: 99999999999999999999999\r\n", b"hello")),
    ("cl_space_inside", post(b"Content-Length: 5 5\r\n", b"hello")),
    ("cl_empty", post(b"Content-Length: \r\n", b"hello")),
    ("cl_letters", post(b"Content-Length: five\r\n", b"hello")),
    ("cl_underscore", post(b"Content-Length: 5_0\r\n", b"hello")),
    ("cl_decimal", post(b"Content-Length: 5.0\r\n", b"hello")),
    ("cl_vertical_tab", post(b"Content-Length: \x0b5\r\n", b"hello")),
    ("cl_nul_after", post(b"Content-Length: 5\x00\r\n", b"hello")),
    # -- Transfer-Encoding forms
    ("te_identity", post(b"Transfer-Encoding: identity\r\n", b"5\r\nhello\r\n0\r\n\r\n")),
    ("te_unknown", post(b"Transfer-Encoding: foo\r\n", b"5\r\nhello\r\n0\r\n\r\n")),
    ("te_xchunked", post(b"Transfer-Encoding: xchunked\r\n", b"5\r\nhello\r\n0\r\n\r\n")),
    ("te_chunked_not_last", post(b"Transfer-Encoding: chunked, gzip\r\n", b"5\r\nhello\r\n0\r\n\r\n")),
    ("te_gzip_then_chunked", post(b"Transfer-Encoding: gzip, chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n")),
    ("te_chunked_twice_list", post(b"Transfer-Encoding: chunked, chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n")),
    ("te_chunked_two_fields", post(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n")),
    ("te_empty", post(b"Transfer-Encoding: \r\n", b"")),
    ("te_vertical_tab", post(b"Transfer-Encoding: \x0bchunked\r\n", b"5\r\nhello\r\n0\r\n\r\n")),
    ("te_space_before_colon", post(b"Transfer-Encoding : chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n")),
    ("te_obs_fold", post(b"Transfer-Encoding:\r\n chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n")),
    ("te_http10", req(b"POST /upload HTTP/1.0", b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n")),
    ("te_http10_with_length", req(b"POST /upload HTTP/1.0", b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n")),
    # -- CL and TE together (smuggling)
    ("cl_te", post(b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n" + SMUGGLED)),
    ("te_cl", post(b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", b"0\r\n\r\n" + SMUGGLED)),
    ("cl_te_unknown", post(b"Content-Length: 5\r\nTransfer-Encoding: foo\r\n", b"hello")),
    ("cl_te_split_reads_name_case", post(b"content-length: 5\r\ntransfer-encoding: CHUNKED\r\n", b"0\r\n\r\n" + SMUGGLED)),
    # -- chunked framing
    ("chunk_size_0x", chunked(b"0x5\r\nhello\r\n0\r\n\r\n")),
    ("chunk_size_plus", chunked(b"+5\r\nhello\r\n0\r\n\r\n")),
    ("chunk_size_minus", chunked(b"-5\r\nhello\r\n0\r\n\r\n")),
    ("chunk_size_huge", chunked(b"fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n")),
    ("chunk_size_empty", chunked(b"\r\nhello\r\n0\r\n\r\n")),
    ("chunk_size_trailing_space", chunked(b"5 \r\nhello\r\n0\r\n\r\n")),
    ("chunk_size_underscore", chunked(b"5_0\r\n" + b"a" * 80 + b"\r\n0\r\n\r\n")),
    ("chunk_extension_bare_semicolon", chunked(b"5;\r\nhello\r\n0\r\n\r\n")),
    ("chunk_extension_bare_lf", chunked(b"5;a\nb\r\nhello\r\n0\r\n\r\n")),
    ("chunk_extension_bare_cr", chunked(b"5;a\rb\r\nhello\r\n0\r\n\r\n")),
    ("chunk_extension_nul", chunked(b"5;a\x00\r\nhello\r\n0\r\n\r\n")),
    ("chunk_extension_bad_char", chunked(b"5;a(b\r\nhello\r\n0\r\n\r\n")),
    ("chunk_data_too_long", chunked(b"5\r\nhelloXX\r\n0\r\n\r\n")),
    ("chunk_data_bare_lf", chunked(b"5\r\nhello\n0\r\n\r\n")),
    ("chunk_size_bare_lf", chunked(b"5\nhello\r\n0\r\n\r\n")),
    ("chunk_last_bare_lf", chunked(b"5\r\nhello\r\n0\n\n")),
    ("chunk_data_no_crlf", chunked(b"5\r\nhello0\r\n\r\n")),
    ("trailer_invalid", chunked(b"5\r\nhello\r\n0\r\nX y\r\n\r\n")),
    ("trailer_space_before_colon", chunked(b"5\r\nhello\r\n0\r\nX-T : y\r\n\r\n")),
]
