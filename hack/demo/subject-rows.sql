-- The subject's account and the one-line digest of each of their other rows,
-- printed before and after the erasure by hack/demo.sh (psql -v uid=<userId>).
SELECT 'accounts' AS "table", id::text AS row,
       concat_ws(' | ', email, full_name, coalesce(company_name, 'NULL'), coalesce(phone, 'NULL'),
                 coalesce(postal_address, 'NULL'), coalesce(host(signup_ip), 'NULL')) AS "values"
FROM accounts WHERE id = :'uid'::uuid
UNION ALL
SELECT 'billing_profiles', id::text, concat_ws(' | ', legal_name, tax_id, vat_number, billing_address, billing_email)
FROM billing_profiles WHERE account_id = :'uid'::uuid
UNION ALL
SELECT 'invoices', number, concat_ws(' | ', to_char(issued_at, 'YYYY-MM-DD'), billed_name, total_eur::text || ' EUR',
                                    (SELECT count(*) || ' line(s)' FROM invoice_lines l WHERE l.invoice_id = i.id))
FROM invoices i WHERE account_id = :'uid'::uuid
UNION ALL
SELECT 'payment_methods', id::text, concat_ws(' | ', processor, processor_customer_id, card_brand, '**** ' || card_last4)
FROM payment_methods WHERE account_id = :'uid'::uuid
UNION ALL
SELECT 'access_logs', id::text, concat_ws(' | ', to_char(created_at, 'YYYY-MM-DD'), host(ip_address), accept_language, left(user_agent, 40))
FROM access_logs WHERE account_id = :'uid'::uuid
UNION ALL
SELECT 'applications', id::text, concat_ws(' | ', name, git_url)
FROM applications WHERE account_id = :'uid'::uuid;
