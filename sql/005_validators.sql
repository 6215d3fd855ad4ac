-- Schema version 5: the upstream's own validators of the response held (its ETag and
-- Last-Modified headers, verbatim), so a refresh can ask conditionally (If-None-Match,
-- If-Modified-Since) and a 304 costs no body, no signature check and no row rewrite. NULL:
-- the upstream gave none (openssl ocsp gives none), and the refresh asks plainly.
ALTER TABLE ocsp_response ADD COLUMN upstream_etag TEXT;
ALTER TABLE ocsp_response ADD COLUMN upstream_last_modified TEXT;
