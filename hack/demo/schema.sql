-- The demo platform database, modelled on the privacy policy in docs/policy-mapping.md:
--   accounts          contact information (name, company, address, phone, e-mail)
--   billing_profiles  billing information (tax ID, VAT number, billing address)
--   invoices          issued invoices: accounting records kept 10 years
--   invoice_lines     lines of an invoice (no personal data of their own)
--   payment_methods   cards: the number stays at the payment processor (Stripe);
--                     only its customer id, brand and last four digits are here
--   access_logs       data obtained automatically: IP address, browser type and
--                     language; kept one year
--   applications      the customers' own applications: customer content, which
--                     the platform does not own and Lethe never touches
-- Dates are relative to now(), so the retention periods always mean something.
-- hack/demo.sh loads this into a fresh database lethe_demo.

CREATE TABLE accounts (
  id             uuid PRIMARY KEY,
  email          text NOT NULL UNIQUE,
  full_name      text NOT NULL,
  company_name   text,
  phone          text,
  postal_address text,
  signup_ip      inet,
  created_at     timestamptz NOT NULL,
  closed_at      timestamptz
);

CREATE TABLE billing_profiles (
  id              bigint PRIMARY KEY,
  account_id      uuid NOT NULL REFERENCES accounts (id),
  legal_name      text NOT NULL,
  tax_id          text,
  vat_number      text,
  billing_address text NOT NULL,
  billing_email   text
);

CREATE TABLE invoices (
  id             bigint PRIMARY KEY,
  account_id     uuid NOT NULL REFERENCES accounts (id),
  number         text NOT NULL UNIQUE,
  issued_at      timestamptz NOT NULL,
  billed_name    text NOT NULL,
  billed_address text NOT NULL,
  vat_number     text,
  total_eur      numeric(10, 2) NOT NULL
);

CREATE TABLE invoice_lines (
  id          bigint PRIMARY KEY,
  invoice_id  bigint NOT NULL REFERENCES invoices (id),
  description text NOT NULL,
  amount_eur  numeric(10, 2) NOT NULL
);

CREATE TABLE payment_methods (
  id                    bigint PRIMARY KEY,
  account_id            uuid NOT NULL REFERENCES accounts (id),
  processor             text NOT NULL,
  processor_customer_id text NOT NULL,
  card_brand            text,
  card_last4            text,
  card_exp              text
);

CREATE TABLE access_logs (
  id              bigint PRIMARY KEY,
  account_id      uuid NOT NULL REFERENCES accounts (id),
  ip_address      inet NOT NULL,
  user_agent      text,
  accept_language text,
  path            text NOT NULL,
  created_at      timestamptz NOT NULL
);

CREATE TABLE applications (
  id         bigint PRIMARY KEY,
  account_id uuid NOT NULL REFERENCES accounts (id),
  name       text NOT NULL,
  git_url    text NOT NULL,
  region     text NOT NULL
);

-- Jane Doe is the data subject of the demo requests. Ali Martin and a namesake,
-- another Jane Doe with a look-alike address, must come out untouched.
INSERT INTO accounts VALUES
  ('7d4e2f0a-3c1b-4b8e-9a65-2f1d0c9b8e71', 'jane.doe@example.com', 'Jane Doe', 'Doe Consulting SARL',
   '+33 6 12 34 56 78', '12 rue des Juifs, 67000 Strasbourg', '203.0.113.42', now() - interval '12 years', NULL),
  ('0b6f3c2e-9d41-4e7a-8c25-6a1f2e3d4c5b', 'ali.martin@example.com', 'Ali Martin', 'Martin & Fils',
   '+33 6 98 76 54 32', '3 quai Kléber, 67000 Strasbourg', '198.51.100.7', now() - interval '3 years', NULL),
  ('5c2a9e1d-7b3f-4d6c-a8e2-1f0b9c8d7e6a', 'jane.doe@example.org', 'Jane Doe', NULL,
   '+33 7 11 22 33 44', '8 place Gutenberg, 67000 Strasbourg', '192.0.2.99', now() - interval '2 years', NULL);

INSERT INTO billing_profiles VALUES
  (1, '7d4e2f0a-3c1b-4b8e-9a65-2f1d0c9b8e71', 'Doe Consulting SARL', '123 456 789 00012', 'FR12123456789',
   '12 rue des Juifs, 67000 Strasbourg', 'billing@doe-consulting.example'),
  (2, '0b6f3c2e-9d41-4e7a-8c25-6a1f2e3d4c5b', 'Martin & Fils', '987 654 321 00034', 'FR98987654321',
   '3 quai Kléber, 67000 Strasbourg', 'compta@martin.example'),
  (3, '5c2a9e1d-7b3f-4d6c-a8e2-1f0b9c8d7e6a', 'Jane Doe', NULL, NULL,
   '8 place Gutenberg, 67000 Strasbourg', 'jane.doe@example.org');

-- Jane's invoices: one issued 11 years ago (past the 10-year accounting period,
-- so erasable) and two recent ones (kept by law).
INSERT INTO invoices VALUES
  (101, '7d4e2f0a-3c1b-4b8e-9a65-2f1d0c9b8e71', 'INV-2015-0101', now() - interval '11 years', 'Doe Consulting SARL',
   '12 rue des Juifs, 67000 Strasbourg', 'FR12123456789', 14.40),
  (102, '7d4e2f0a-3c1b-4b8e-9a65-2f1d0c9b8e71', 'INV-2024-0102', now() - interval '2 years', 'Doe Consulting SARL',
   '12 rue des Juifs, 67000 Strasbourg', 'FR12123456789', 86.40),
  (103, '7d4e2f0a-3c1b-4b8e-9a65-2f1d0c9b8e71', 'INV-2026-0103', now() - interval '20 days', 'Doe Consulting SARL',
   '12 rue des Juifs, 67000 Strasbourg', 'FR12123456789', 91.20),
  (201, '0b6f3c2e-9d41-4e7a-8c25-6a1f2e3d4c5b', 'INV-2025-0201', now() - interval '1 year', 'Martin & Fils',
   '3 quai Kléber, 67000 Strasbourg', 'FR98987654321', 240.00),
  (301, '5c2a9e1d-7b3f-4d6c-a8e2-1f0b9c8d7e6a', 'INV-2025-0301', now() - interval '6 months', 'Jane Doe',
   '8 place Gutenberg, 67000 Strasbourg', NULL, 7.20);

INSERT INTO invoice_lines VALUES
  (1011, 101, 'Container hosting, 1 x M', 12.00), (1012, 101, 'VAT 20%', 2.40),
  (1021, 102, 'Container hosting, 2 x L', 72.00), (1022, 102, 'VAT 20%', 14.40),
  (1031, 103, 'Container hosting, 2 x L', 72.00), (1032, 103, 'PostgreSQL Starter 512M', 4.00),
  (1033, 103, 'VAT 20%', 15.20),
  (2011, 201, 'Container hosting, 4 x XL', 200.00), (2012, 201, 'VAT 20%', 40.00),
  (3011, 301, 'Container hosting, 1 x S', 6.00), (3012, 301, 'VAT 20%', 1.20);

INSERT INTO payment_methods VALUES
  (1, '7d4e2f0a-3c1b-4b8e-9a65-2f1d0c9b8e71', 'stripe', 'cus_Q1w2E3r4T5y6U7', 'visa', '4242', '09/28'),
  (2, '0b6f3c2e-9d41-4e7a-8c25-6a1f2e3d4c5b', 'stripe', 'cus_A9s8D7f6G5h4J3', 'mastercard', '5454', '01/27'),
  (3, '5c2a9e1d-7b3f-4d6c-a8e2-1f0b9c8d7e6a', 'stripe', 'cus_Z1x2C3v4B5n6M7', 'visa', '1881', '12/29');

-- Jane's connections: three recent, one 14 months old (past the one-year period).
INSERT INTO access_logs VALUES
  (1, '7d4e2f0a-3c1b-4b8e-9a65-2f1d0c9b8e71', '203.0.113.42', 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0',
   'fr-FR,fr;q=0.9,en;q=0.8', '/apps', now() - interval '14 months'),
  (2, '7d4e2f0a-3c1b-4b8e-9a65-2f1d0c9b8e71', '203.0.113.42', 'Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0',
   'fr-FR,fr;q=0.9,en;q=0.8', '/apps/shop-api/deploy', now() - interval '40 days'),
  (3, '7d4e2f0a-3c1b-4b8e-9a65-2f1d0c9b8e71', '203.0.113.77', 'Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) Safari/604.1',
   'fr-FR', '/billing', now() - interval '3 days'),
  (4, '7d4e2f0a-3c1b-4b8e-9a65-2f1d0c9b8e71', '203.0.113.42', 'Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0',
   'fr-FR,fr;q=0.9,en;q=0.8', '/account/delete', now() - interval '1 hour'),
  (5, '0b6f3c2e-9d41-4e7a-8c25-6a1f2e3d4c5b', '198.51.100.7', 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Safari/605.1.15',
   'fr-FR', '/apps', now() - interval '2 days'),
  (6, '5c2a9e1d-7b3f-4d6c-a8e2-1f0b9c8d7e6a', '192.0.2.99', 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/138.0',
   'en-GB', '/apps', now() - interval '5 days');

INSERT INTO applications VALUES
  (1, '7d4e2f0a-3c1b-4b8e-9a65-2f1d0c9b8e71', 'shop-api', 'git@git.example.com:doe-consulting/shop-api.git', 'osc-fr1'),
  (2, '7d4e2f0a-3c1b-4b8e-9a65-2f1d0c9b8e71', 'shop-front', 'git@git.example.com:doe-consulting/shop-front.git', 'osc-fr1'),
  (3, '0b6f3c2e-9d41-4e7a-8c25-6a1f2e3d4c5b', 'erp', 'git@git.example.com:martin/erp.git', 'osc-secnum-fr1');
