-- Labelled scaffold fixture (PostgreSQL): realistic tables over four schemas.
-- Each column carries its true category after "-- label:" (none: not personal),
-- as a privacy reviewer would map it, independently of the classifier's rules.
-- internal/scaffold/precision_test.go measures the classifier against it.

CREATE SCHEMA shop;
CREATE TABLE shop.customers (
  id bigint PRIMARY KEY, -- label: none
  email varchar(255) NOT NULL UNIQUE, -- label: user.contact.email
  first_name text NOT NULL, -- label: user.contact.name
  last_name text NOT NULL, -- label: user.contact.name
  phone_number varchar(32), -- label: user.contact.phone
  birthday date, -- label: user.demographic.date_of_birth
  gender text, -- label: user.demographic.gender
  preferred_locale varchar(10), -- label: user.device.language
  marketing_opt_in boolean NOT NULL DEFAULT false, -- label: none
  email_verified boolean NOT NULL DEFAULT false, -- label: none
  password_hash text NOT NULL, -- label: user.authorization.credentials
  stripe_customer_id text, -- label: user.financial.payment.processor_id
  loyalty_points integer NOT NULL DEFAULT 0, -- label: none
  created_at timestamptz NOT NULL DEFAULT now(), -- label: none
  updated_at timestamptz -- label: none
);
CREATE TABLE shop.addresses (
  id bigint PRIMARY KEY, -- label: none
  customer_id bigint NOT NULL REFERENCES shop.customers(id), -- label: none
  label text, -- label: none
  recipient_name text, -- label: user.contact.name
  street text NOT NULL, -- label: user.contact.address
  address_line2 text, -- label: user.contact.address
  postal_code varchar(16) NOT NULL, -- label: user.contact.address
  city text NOT NULL, -- label: user.location.city
  country_code char(2) NOT NULL, -- label: user.location.country
  phone text, -- label: user.contact.phone
  is_default boolean NOT NULL DEFAULT false -- label: none
);
CREATE TABLE shop.products (
  id bigint PRIMARY KEY, -- label: none
  sku text NOT NULL UNIQUE, -- label: none
  name text NOT NULL, -- label: none
  description text, -- label: none
  price numeric(10,2) NOT NULL, -- label: none
  currency char(3) NOT NULL, -- label: none
  stock integer NOT NULL, -- label: none
  weight_grams integer, -- label: none
  color text, -- label: none
  created_at timestamptz NOT NULL DEFAULT now() -- label: none
);
CREATE TABLE shop.orders (
  id bigint PRIMARY KEY, -- label: none
  customer_id bigint NOT NULL REFERENCES shop.customers(id), -- label: none
  status text NOT NULL, -- label: none
  shipping_address text NOT NULL, -- label: user.contact.address
  billing_name text, -- label: user.financial.billing_name
  billing_address text, -- label: user.financial.billing_address
  gift_message text, -- label: user.content
  customer_note text, -- label: user.content
  client_ip inet, -- label: user.device.ip_address
  user_agent text, -- label: user.device.browser
  subtotal numeric(10,2) NOT NULL, -- label: none
  tax_amount numeric(10,2) NOT NULL, -- label: none
  total numeric(10,2) NOT NULL, -- label: none
  placed_at timestamptz NOT NULL -- label: none
);
CREATE TABLE shop.order_lines (
  id bigint PRIMARY KEY, -- label: none
  order_id bigint NOT NULL REFERENCES shop.orders(id) ON DELETE CASCADE, -- label: none
  product_id bigint NOT NULL REFERENCES shop.products(id), -- label: none
  quantity integer NOT NULL, -- label: none
  unit_price numeric(10,2) NOT NULL, -- label: none
  engraving_text text -- label: user.content
);
CREATE TABLE shop.payments (
  id bigint PRIMARY KEY, -- label: none
  order_id bigint NOT NULL REFERENCES shop.orders(id), -- label: none
  amount numeric(10,2) NOT NULL, -- label: none
  method text NOT NULL, -- label: none
  card_brand text, -- label: user.financial.payment.card
  card_last4 char(4), -- label: user.financial.payment.card
  card_exp_month smallint, -- label: user.financial.payment.card
  card_exp_year smallint, -- label: user.financial.payment.card
  cardholder_name text, -- label: user.financial.payment.card
  processor_charge_id text, -- label: user.financial.payment.processor_id
  iban varchar(34), -- label: user.financial.bank_account
  paid_at timestamptz -- label: none
);
CREATE TABLE shop.reviews (
  id bigint PRIMARY KEY, -- label: none
  product_id bigint NOT NULL REFERENCES shop.products(id), -- label: none
  customer_id bigint REFERENCES shop.customers(id) ON DELETE SET NULL, -- label: none
  rating smallint NOT NULL, -- label: none
  title text, -- label: none
  body text, -- label: user.content
  author_display_name text, -- label: user.contact.name
  created_at timestamptz NOT NULL DEFAULT now() -- label: none
);
CREATE TABLE shop.carts (
  id bigint PRIMARY KEY, -- label: none
  customer_id bigint REFERENCES shop.customers(id), -- label: none
  session_token text, -- label: user.authorization.credentials
  device_id text, -- label: user.device.id
  ip_address text, -- label: user.device.ip_address
  item_count integer NOT NULL DEFAULT 0, -- label: none
  abandoned boolean NOT NULL DEFAULT false, -- label: none
  updated_at timestamptz -- label: none
);
CREATE TABLE shop.newsletter_subscriptions (
  id bigint PRIMARY KEY, -- label: none
  email text NOT NULL, -- label: user.contact.email
  source text, -- label: none
  confirmed_at timestamptz, -- label: none
  unsubscribe_token text, -- label: user.authorization.credentials
  signup_ip inet -- label: user.device.ip_address
);
CREATE TABLE shop.coupons (
  id bigint PRIMARY KEY, -- label: none
  code text NOT NULL UNIQUE, -- label: none
  discount_percent integer NOT NULL, -- label: none
  valid_until date, -- label: none
  max_uses integer -- label: none
);
CREATE TABLE shop.wishlists (
  id bigint PRIMARY KEY, -- label: none
  customer_id bigint NOT NULL REFERENCES shop.customers(id), -- label: none
  name text NOT NULL, -- label: none
  is_public boolean NOT NULL DEFAULT false, -- label: none
  share_slug text -- label: none
);
CREATE TABLE shop.returns (
  id bigint PRIMARY KEY, -- label: none
  order_id bigint NOT NULL REFERENCES shop.orders(id), -- label: none
  reason text, -- label: user.content
  contact_phone text, -- label: user.contact.phone
  pickup_address text, -- label: user.contact.address
  refund_iban text, -- label: user.financial.bank_account
  status text NOT NULL, -- label: none
  requested_at timestamptz NOT NULL -- label: none
);

CREATE SCHEMA crm;
CREATE EXTENSION IF NOT EXISTS citext;
CREATE TABLE crm.accounts (
  id bigint PRIMARY KEY, -- label: none
  company_name text NOT NULL, -- label: user.contact.company
  vat_number text, -- label: user.financial.vat_number
  tax_id text, -- label: user.financial.tax_id
  industry text, -- label: none
  employee_count integer, -- label: none
  website text, -- label: none
  billing_email text, -- label: user.contact.email
  billing_city text, -- label: user.financial.billing_address
  created_at timestamptz NOT NULL DEFAULT now() -- label: none
);
CREATE TABLE crm.contacts (
  id bigint PRIMARY KEY, -- label: none
  account_id bigint REFERENCES crm.accounts(id), -- label: none
  email citext NOT NULL UNIQUE, -- label: user.contact.email
  given_name text, -- label: user.contact.name
  family_name text, -- label: user.contact.name
  job_title text, -- label: user.job_title
  mobile text, -- label: user.contact.phone
  work_phone text, -- label: user.contact.phone
  linkedin_url text, -- label: user.account.username
  twitter_handle text, -- label: user.account.username
  timezone text, -- label: none
  lead_score integer, -- label: none
  owner_id bigint REFERENCES crm.contacts(id), -- label: none
  last_contacted_at timestamptz -- label: none
);
CREATE TABLE crm.leads (
  id bigint PRIMARY KEY, -- label: none
  contact_info text, -- label: user.contact.email
  full_name text, -- label: user.contact.name
  company text, -- label: user.contact.company
  source text, -- label: none
  status text NOT NULL, -- label: none
  notes text, -- label: user.content
  estimated_value numeric(12,2), -- label: none
  captured_ip inet, -- label: user.device.ip_address
  created_at timestamptz NOT NULL DEFAULT now() -- label: none
);
CREATE TABLE crm.deals (
  id bigint PRIMARY KEY, -- label: none
  account_id bigint NOT NULL REFERENCES crm.accounts(id), -- label: none
  primary_contact_id bigint REFERENCES crm.contacts(id), -- label: none
  title text NOT NULL, -- label: none
  amount numeric(12,2), -- label: none
  stage text NOT NULL, -- label: none
  probability integer, -- label: none
  close_date date -- label: none
);
CREATE TABLE crm.activities (
  id bigint PRIMARY KEY, -- label: none
  contact_id bigint NOT NULL REFERENCES crm.contacts(id) ON DELETE CASCADE, -- label: none
  kind text NOT NULL, -- label: none
  subject text, -- label: none
  body text, -- label: user.content
  duration_minutes integer, -- label: none
  occurred_at timestamptz NOT NULL -- label: none
);
CREATE TABLE crm.email_messages (
  id bigint PRIMARY KEY, -- label: none
  contact_id bigint REFERENCES crm.contacts(id), -- label: none
  from_address text NOT NULL, -- label: user.contact.email
  to_address text NOT NULL, -- label: user.contact.email
  cc text, -- label: user.contact.email
  subject text, -- label: none
  body_html text, -- label: user.content
  message_id text NOT NULL UNIQUE, -- label: none
  opened boolean NOT NULL DEFAULT false, -- label: none
  sent_at timestamptz -- label: none
);
CREATE TABLE crm.call_logs (
  id bigint PRIMARY KEY, -- label: none
  contact_id bigint NOT NULL REFERENCES crm.contacts(id), -- label: none
  caller_number text, -- label: user.contact.phone
  callee_number text, -- label: user.contact.phone
  recording_url text, -- label: user.content
  transcript text, -- label: user.content
  duration_seconds integer, -- label: none
  started_at timestamptz NOT NULL -- label: none
);
CREATE TABLE crm.pipelines (
  id bigint PRIMARY KEY, -- label: none
  name text NOT NULL, -- label: none
  position integer NOT NULL, -- label: none
  is_default boolean NOT NULL DEFAULT false -- label: none
);
CREATE TABLE crm.tags (
  id bigint PRIMARY KEY, -- label: none
  label text NOT NULL UNIQUE, -- label: none
  color text -- label: none
);
CREATE TABLE crm.consents (
  id bigint PRIMARY KEY, -- label: none
  contact_id bigint NOT NULL REFERENCES crm.contacts(id), -- label: none
  purpose text NOT NULL, -- label: none
  granted boolean NOT NULL, -- label: none
  granted_ip text, -- label: user.device.ip_address
  proof_document bytea, -- label: user.content
  recorded_at timestamptz NOT NULL -- label: none
);

CREATE SCHEMA hr;
CREATE TABLE hr.employees (
  id bigint PRIMARY KEY, -- label: none
  employee_number text NOT NULL UNIQUE, -- label: none
  work_email text NOT NULL UNIQUE, -- label: user.contact.email
  personal_email text, -- label: user.contact.email
  first_name text NOT NULL, -- label: user.contact.name
  middle_name text, -- label: user.contact.name
  last_name text NOT NULL, -- label: user.contact.name
  date_of_birth date NOT NULL, -- label: user.demographic.date_of_birth
  sex char(1), -- label: user.demographic.gender
  nationality text, -- label: user.demographic.background
  marital_status text, -- label: user.demographic.background
  ssn text, -- label: user.government_id
  passport_number text, -- label: user.government_id
  home_address text, -- label: user.contact.address
  home_phone text, -- label: user.contact.phone
  manager_id bigint REFERENCES hr.employees(id), -- label: none
  department_id bigint, -- label: none
  hire_date date NOT NULL, -- label: none
  termination_date date, -- label: none
  photo_url text, -- label: user.content.photo
  active boolean NOT NULL DEFAULT true -- label: none
);
CREATE TABLE hr.departments (
  id bigint PRIMARY KEY, -- label: none
  name text NOT NULL, -- label: none
  cost_center text, -- label: none
  budget numeric(14,2) -- label: none
);
CREATE TABLE hr.salaries (
  id bigint PRIMARY KEY, -- label: none
  employee_id bigint NOT NULL REFERENCES hr.employees(id), -- label: none
  salary numeric(12,2) NOT NULL, -- label: user.financial.income
  currency char(3) NOT NULL, -- label: none
  bank_account_number text, -- label: user.financial.bank_account
  iban text, -- label: user.financial.bank_account
  bic text, -- label: user.financial.bank_account
  effective_from date NOT NULL -- label: none
);
CREATE TABLE hr.emergency_contacts (
  id bigint PRIMARY KEY, -- label: none
  employee_id bigint NOT NULL REFERENCES hr.employees(id) ON DELETE CASCADE, -- label: none
  contact_name text NOT NULL, -- label: user.contact.name
  relationship text, -- label: user.demographic.background
  phone text NOT NULL, -- label: user.contact.phone
  email text -- label: user.contact.email
);
CREATE TABLE hr.leave_requests (
  id bigint PRIMARY KEY, -- label: none
  employee_id bigint NOT NULL REFERENCES hr.employees(id), -- label: none
  approver_id bigint REFERENCES hr.employees(id) ON DELETE SET NULL, -- label: none
  leave_type text NOT NULL, -- label: none
  medical_reason text, -- label: user.health
  starts_on date NOT NULL, -- label: none
  ends_on date NOT NULL, -- label: none
  comment text -- label: user.content
);
CREATE TABLE hr.health_records (
  id bigint PRIMARY KEY, -- label: none
  employee_id bigint NOT NULL REFERENCES hr.employees(id), -- label: none
  blood_type text, -- label: user.health
  allergies text, -- label: user.health
  disability text, -- label: user.health
  medications text, -- label: user.health
  updated_at timestamptz -- label: none
);
CREATE TABLE hr.performance_reviews (
  id bigint PRIMARY KEY, -- label: none
  employee_id bigint NOT NULL REFERENCES hr.employees(id), -- label: none
  reviewer_id bigint REFERENCES hr.employees(id), -- label: none
  score integer, -- label: none
  feedback text, -- label: user.content
  period text NOT NULL, -- label: none
  submitted_at timestamptz -- label: none
);
CREATE TABLE hr.applicants (
  id bigint PRIMARY KEY, -- label: none
  email text NOT NULL UNIQUE, -- label: user.contact.email
  full_name text NOT NULL, -- label: user.contact.name
  phone text, -- label: user.contact.phone
  resume bytea, -- label: user.content
  cover_letter text, -- label: user.content
  expected_salary integer, -- label: user.financial.income
  linkedin_handle text, -- label: user.account.username
  city text, -- label: user.location.city
  applied_at timestamptz NOT NULL, -- label: none
  status text NOT NULL -- label: none
);
CREATE TABLE hr.job_postings (
  id bigint PRIMARY KEY, -- label: none
  department_id bigint REFERENCES hr.departments(id), -- label: none
  title text NOT NULL, -- label: none
  description text, -- label: none
  salary_min integer, -- label: none
  salary_max integer, -- label: none
  location text, -- label: none
  published boolean NOT NULL DEFAULT false -- label: none
);
CREATE TABLE hr.badges (
  id bigint PRIMARY KEY, -- label: none
  employee_id bigint NOT NULL REFERENCES hr.employees(id), -- label: none
  badge_serial text NOT NULL UNIQUE, -- label: none
  issued_on date, -- label: none
  revoked boolean NOT NULL DEFAULT false -- label: none
);

CREATE SCHEMA app;
CREATE TABLE app.users (
  id uuid PRIMARY KEY, -- label: none
  username varchar(64) NOT NULL UNIQUE, -- label: user.account.username
  email_address text NOT NULL UNIQUE, -- label: user.contact.email
  display_name text, -- label: user.contact.name
  avatar text, -- label: user.content.photo
  bio text, -- label: user.content
  locale text, -- label: none
  timezone text, -- label: none
  totp_secret text, -- label: user.authorization.credentials
  api_key text UNIQUE, -- label: user.authorization.credentials
  last_login_ip inet, -- label: user.device.ip_address
  last_login_at timestamptz, -- label: none
  login_count integer NOT NULL DEFAULT 0, -- label: none
  is_admin boolean NOT NULL DEFAULT false, -- label: none
  referrer_id uuid REFERENCES app.users(id), -- label: none
  deleted_at timestamptz -- label: none
);
CREATE TABLE app.sessions (
  id text PRIMARY KEY, -- label: none
  user_id uuid NOT NULL REFERENCES app.users(id) ON DELETE CASCADE, -- label: none
  refresh_token text NOT NULL, -- label: user.authorization.credentials
  ip inet, -- label: user.device.ip_address
  user_agent text, -- label: user.device.browser
  expires_at timestamptz NOT NULL, -- label: none
  created_at timestamptz NOT NULL DEFAULT now() -- label: none
);
CREATE TABLE app.devices (
  id bigint PRIMARY KEY, -- label: none
  user_id uuid NOT NULL REFERENCES app.users(id), -- label: none
  push_token text, -- label: user.device.id
  platform text NOT NULL, -- label: none
  os_version text, -- label: none
  app_version text, -- label: none
  device_model text, -- label: none
  advertising_id text, -- label: user.device.id
  last_seen_at timestamptz -- label: none
);
CREATE TABLE app.posts (
  id bigint PRIMARY KEY, -- label: none
  author_id uuid NOT NULL REFERENCES app.users(id), -- label: none
  title text, -- label: none
  content text NOT NULL, -- label: user.content
  visibility text NOT NULL, -- label: none
  like_count integer NOT NULL DEFAULT 0, -- label: none
  geo_lat double precision, -- label: user.location.coordinates
  geo_lng double precision, -- label: user.location.coordinates
  published_at timestamptz -- label: none
);
CREATE TABLE app.comments (
  id bigint PRIMARY KEY, -- label: none
  post_id bigint NOT NULL REFERENCES app.posts(id) ON DELETE CASCADE, -- label: none
  author_id uuid REFERENCES app.users(id) ON DELETE SET NULL, -- label: none
  parent_id bigint REFERENCES app.comments(id), -- label: none
  message text NOT NULL, -- label: user.content
  edited boolean NOT NULL DEFAULT false, -- label: none
  created_at timestamptz NOT NULL DEFAULT now() -- label: none
);
CREATE TABLE app.direct_messages (
  id bigint PRIMARY KEY, -- label: none
  sender_id uuid NOT NULL REFERENCES app.users(id), -- label: none
  recipient_id uuid REFERENCES app.users(id), -- label: none
  body text NOT NULL, -- label: user.content
  attachment bytea, -- label: user.content
  read_at timestamptz -- label: none
);
CREATE TABLE app.follows (
  id bigint PRIMARY KEY, -- label: none
  follower_id uuid NOT NULL REFERENCES app.users(id), -- label: none
  followee_id uuid NOT NULL REFERENCES app.users(id), -- label: none
  created_at timestamptz NOT NULL DEFAULT now() -- label: none
);
CREATE TABLE app.notifications (
  id bigint PRIMARY KEY, -- label: none
  user_id uuid NOT NULL REFERENCES app.users(id), -- label: none
  channel text NOT NULL, -- label: none
  template text NOT NULL, -- label: none
  payload jsonb, -- label: user.content
  sent boolean NOT NULL DEFAULT false, -- label: none
  created_at timestamptz NOT NULL DEFAULT now() -- label: none
);
CREATE TABLE app.audit_events (
  id bigint PRIMARY KEY, -- label: none
  actor_id uuid REFERENCES app.users(id), -- label: none
  action text NOT NULL, -- label: none
  target text, -- label: none
  remote_addr text, -- label: user.device.ip_address
  metadata jsonb, -- label: none
  occurred_at timestamptz NOT NULL -- label: none
);
CREATE TABLE app.feature_flags (
  id bigint PRIMARY KEY, -- label: none
  key text NOT NULL UNIQUE, -- label: none
  enabled boolean NOT NULL, -- label: none
  rollout_percent integer, -- label: none
  description text -- label: none
);
CREATE TABLE app.subscriptions (
  id bigint PRIMARY KEY, -- label: none
  user_id uuid NOT NULL REFERENCES app.users(id), -- label: none
  plan text NOT NULL, -- label: none
  paddle_subscription_id text, -- label: user.financial.payment.processor_id
  renews_on date, -- label: none
  cancelled boolean NOT NULL DEFAULT false, -- label: none
  trial_ends_at timestamptz -- label: none
);
CREATE TABLE app.support_requests (
  id bigint PRIMARY KEY, -- label: none
  user_id uuid REFERENCES app.users(id), -- label: none
  reply_to text, -- label: user.contact.email
  callback_number text, -- label: user.contact.phone
  question text NOT NULL, -- label: user.content
  priority text, -- label: none
  handled boolean NOT NULL DEFAULT false, -- label: none
  created_at timestamptz NOT NULL DEFAULT now() -- label: none
);
CREATE TABLE app.locations (
  id bigint PRIMARY KEY, -- label: none
  user_id uuid NOT NULL REFERENCES app.users(id), -- label: none
  latitude numeric(9,6) NOT NULL, -- label: user.location.coordinates
  longitude numeric(9,6) NOT NULL, -- label: user.location.coordinates
  accuracy_m integer, -- label: none
  region text, -- label: user.location.region
  recorded_at timestamptz NOT NULL -- label: none
);
CREATE TABLE app.kyc_checks (
  id bigint PRIMARY KEY, -- label: none
  user_id uuid NOT NULL REFERENCES app.users(id), -- label: none
  national_id text, -- label: user.government_id
  id_card_scan bytea, -- label: user.government_id
  selfie_url text, -- label: user.content.photo
  date_of_birth date, -- label: user.demographic.date_of_birth
  nationality text, -- label: user.demographic.background
  verified boolean NOT NULL DEFAULT false, -- label: none
  checked_at timestamptz -- label: none
);

-- A few rows where the name alone is ambiguous, for --sample.
INSERT INTO crm.leads (id, contact_info, status) SELECT g, 'lead' || g || '@example.com', 'new' FROM generate_series(1, 20) g;
