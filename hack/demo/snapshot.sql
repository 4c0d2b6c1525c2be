-- What the demo summary compares before and after the requests, for the subject
-- whose account id is :'uid' (the account id survives anonymization; the e-mail
-- does not). One line per table: name|subject's rows|digest of everyone else's rows.
-- Run by hack/demo.sh: psql -At -F '|' -v uid=<userId> -f snapshot.sql
WITH subject_invoices AS (SELECT id FROM invoices WHERE account_id = :'uid'::uuid)
SELECT t.name, t.subject_rows, coalesce(t.others, '-')
FROM (
  SELECT 1 AS ord, 'accounts' AS name,
         (SELECT count(*) FROM accounts WHERE id = :'uid'::uuid) AS subject_rows,
         (SELECT md5(string_agg(a::text, '|' ORDER BY id)) FROM accounts a WHERE id <> :'uid'::uuid) AS others
  UNION ALL
  SELECT 2, 'billing_profiles',
         (SELECT count(*) FROM billing_profiles WHERE account_id = :'uid'::uuid),
         (SELECT md5(string_agg(b::text, '|' ORDER BY id)) FROM billing_profiles b WHERE account_id <> :'uid'::uuid)
  UNION ALL
  SELECT 3, 'invoices',
         (SELECT count(*) FROM subject_invoices),
         (SELECT md5(string_agg(i::text, '|' ORDER BY id)) FROM invoices i WHERE account_id <> :'uid'::uuid)
  UNION ALL
  SELECT 4, 'invoice_lines',
         (SELECT count(*) FROM invoice_lines WHERE invoice_id IN (SELECT id FROM subject_invoices)),
         (SELECT md5(string_agg(l::text, '|' ORDER BY id)) FROM invoice_lines l
           WHERE invoice_id NOT IN (SELECT id FROM subject_invoices)
             AND invoice_id NOT IN (101, 102, 103)) -- the subject's, even once deleted
  UNION ALL
  SELECT 5, 'payment_methods',
         (SELECT count(*) FROM payment_methods WHERE account_id = :'uid'::uuid),
         (SELECT md5(string_agg(p::text, '|' ORDER BY id)) FROM payment_methods p WHERE account_id <> :'uid'::uuid)
  UNION ALL
  SELECT 6, 'access_logs',
         (SELECT count(*) FROM access_logs WHERE account_id = :'uid'::uuid),
         (SELECT md5(string_agg(l::text, '|' ORDER BY id)) FROM access_logs l WHERE account_id <> :'uid'::uuid)
  UNION ALL
  SELECT 7, 'applications',
         (SELECT count(*) FROM applications WHERE account_id = :'uid'::uuid),
         (SELECT md5(string_agg(a::text, '|' ORDER BY id)) FROM applications a WHERE account_id <> :'uid'::uuid)
) t
ORDER BY t.ord;
