-- kubectl lethe scaffold fixture (PostgreSQL): a 3-level chain users →
-- orders → order_items, a self-reference (users.referred_by), NOT NULL
-- UNIQUE columns (email, username), ON DELETE SET NULL and CASCADE, a
-- column only sampling classifies (support_tickets.contact), and a table
-- no subject reaches (products).
CREATE TABLE users (
  id bigint PRIMARY KEY,
  email varchar(255) NOT NULL UNIQUE,
  username text NOT NULL UNIQUE,
  full_name text NOT NULL,
  phone text,
  date_of_birth date,
  signup_ip inet,
  referred_by bigint REFERENCES users(id),
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE products (
  id bigint PRIMARY KEY,
  name text NOT NULL,
  price numeric(10,2) NOT NULL
);
CREATE TABLE orders (
  id bigint PRIMARY KEY,
  user_id bigint NOT NULL REFERENCES users(id),
  shipping_address text NOT NULL,
  note text,
  total numeric(10,2) NOT NULL
);
CREATE TABLE order_items (
  id bigint PRIMARY KEY,
  order_id bigint NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
  product_id bigint NOT NULL REFERENCES products(id),
  quantity int NOT NULL
);
CREATE TABLE support_tickets (
  id bigint PRIMARY KEY,
  user_id bigint NOT NULL REFERENCES users(id),
  assignee_id bigint REFERENCES users(id) ON DELETE SET NULL,
  contact text,
  body text NOT NULL
);
INSERT INTO users VALUES
  (1, 'zelda.quint@example.org', 'zquint', 'Zelda Quintessa', '+33 6 12 34 56 78', '1984-03-02', '203.0.113.7', NULL, now()),
  (2, 'yorick.mabe@example.org', 'ymabe', 'Yorick Mabeuf', '+33 6 98 76 54 32', '1990-11-23', '2001:db8::42', 1, now()),
  (3, 'xavia.lorn@example.org', 'xlorn', 'Xavia Lornestad', NULL, NULL, NULL, 1, now());
INSERT INTO products VALUES (1, 'Widget', 9.90);
INSERT INTO orders VALUES (10, 1, '12 rue Zephyrine, 75011 Paris', 'ring twice please', 19.80), (20, 2, '4 allee Yggdrasil, Lyon', NULL, 9.90);
INSERT INTO order_items VALUES (100, 10, 1, 2), (200, 20, 1, 1);
INSERT INTO support_tickets VALUES
  (1000, 1, 2, 'zelda.backup@example.net', 'my parcel never came'),
  (1001, 2, NULL, 'yorick.alt@example.net', 'refund please'),
  (1002, 3, 1, 'xavia.other@example.net', 'password reset');
