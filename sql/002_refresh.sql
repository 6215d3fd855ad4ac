-- Schema version 2: the housekeeping purge finds rows of expired certificates by this column
-- without scanning the table.
CREATE INDEX ocsp_response_cert_not_after ON ocsp_response (cert_not_after);
