-- kubectl lethe scaffold fixture (MariaDB): the PostgreSQL fixture's
-- tables, with explicit FOREIGN KEY clauses.
CREATE TABLE users (
  id bigint PRIMARY KEY,
  email varchar(255) NOT NULL UNIQUE,
  username varchar(64) NOT NULL UNIQUE,
  full_name text NOT NULL,
  phone varchar(32),
  date_of_birth date,
  signup_ip varchar(45),
  referred_by bigint,
  created_at timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP,
  CONSTRAINT users_referred_by_fkey FOREIGN KEY (referred_by) REFERENCES users(id)
) ENGINE=InnoDB;
CREATE TABLE products (
  id bigint PRIMARY KEY,
  name text NOT NULL,
  price decimal(10,2) NOT NULL
) ENGINE=InnoDB;
CREATE TABLE orders (
  id bigint PRIMARY KEY,
  user_id bigint NOT NULL,
  shipping_address text NOT NULL,
  note text,
  total decimal(10,2) NOT NULL,
  CONSTRAINT orders_user_id_fkey FOREIGN KEY (user_id) REFERENCES users(id)
) ENGINE=InnoDB;
CREATE TABLE order_items (
  id bigint PRIMARY KEY,
  order_id bigint NOT NULL,
  product_id bigint NOT NULL,
  quantity int NOT NULL,
  CONSTRAINT order_items_order_id_fkey FOREIGN KEY (order_id) REFERENCES orders(id) ON DELETE CASCADE,
  CONSTRAINT order_items_product_id_fkey FOREIGN KEY (product_id) REFERENCES products(id)
) ENGINE=InnoDB;
CREATE TABLE support_tickets (
  id bigint PRIMARY KEY,
  user_id bigint NOT NULL,
  assignee_id bigint,
  contact text,
  body text NOT NULL,
  CONSTRAINT support_tickets_user_id_fkey FOREIGN KEY (user_id) REFERENCES users(id),
  CONSTRAINT support_tickets_assignee_id_fkey FOREIGN KEY (assignee_id) REFERENCES users(id) ON DELETE SET NULL
) ENGINE=InnoDB;
INSERT INTO users VALUES
  (1, 'zelda.quint@example.org', 'zquint', 'Zelda Quintessa', '+33 6 12 34 56 78', '1984-03-02', '203.0.113.7', NULL, NOW()),
  (2, 'yorick.mabe@example.org', 'ymabe', 'Yorick Mabeuf', '+33 6 98 76 54 32', '1990-11-23', '2001:db8::42', 1, NOW()),
  (3, 'xavia.lorn@example.org', 'xlorn', 'Xavia Lornestad', NULL, NULL, NULL, 1, NOW());
INSERT INTO products VALUES (1, 'Widget', 9.90);
INSERT INTO orders VALUES (10, 1, '12 rue Zephyrine, 75011 Paris', 'ring twice please', 19.80), (20, 2, '4 allee Yggdrasil, Lyon', NULL, 9.90);
INSERT INTO order_items VALUES (100, 10, 1, 2), (200, 20, 1, 1);
INSERT INTO support_tickets VALUES
  (1000, 1, 2, 'zelda.backup@example.net', 'my parcel never came'),
  (1001, 2, NULL, 'yorick.alt@example.net', 'refund please'),
  (1002, 3, 1, 'xavia.other@example.net', 'password reset');
