-- What writing a million broadcast_recipient rows costs, index by index, and in which order to write them.
-- A scratch copy of the table in schema `exp` (dropped first); run with:
--   psql -h 127.0.0.1 -U postgres -d test -f bench/recipient_write_cost.sql
-- Each INSERT writes the same 1,000,000 rows (1,000 senders, two chunks each) into an empty table;
-- between them the rows are deleted, the table vacuumed and a CHECKPOINT taken (untimed in effect).
\timing on
DROP SCHEMA IF EXISTS exp CASCADE;
CREATE SCHEMA exp;
CREATE TABLE exp.r (id bigserial PRIMARY KEY, corp_id int, broadcast_id bigint, customer_id bigint, chat_id bigint,
                    employee_id bigint, chunk_id bigint, send_day date, status varchar(16), reason varchar(48),
                    updated_at timestamptz);
CREATE UNIQUE INDEX r_uq ON exp.r (broadcast_id, customer_id) WHERE customer_id IS NOT NULL;
CREATE UNIQUE INDEX r_uq2 ON exp.r (broadcast_id, chat_id) WHERE chat_id IS NOT NULL;
CREATE INDEX r_caps ON exp.r (corp_id, customer_id, send_day);
CREATE INDEX r_chat ON exp.r (chat_id, send_day) WHERE chat_id IS NOT NULL;
CREATE INDEX r_chunk ON exp.r (chunk_id);
CREATE TEMP TABLE src AS
  SELECT g AS cid, g % 1000 AS emp, 100000 + (g % 1000) * 2 + (g / 500000) AS chunk FROM generate_series(1, 1000000) g;
ANALYZE src;
CHECKPOINT;

\echo '(1) every index, rows in customer order (what the planner does)'
INSERT INTO exp.r (corp_id, broadcast_id, customer_id, employee_id, chunk_id, send_day, status, reason, updated_at)
  SELECT 1, 100, cid, emp, chunk, current_date, 'pending', '', now() FROM src ORDER BY cid;
DELETE FROM exp.r; VACUUM exp.r; CHECKPOINT;

\echo '(2) every index, rows in chunk order'
INSERT INTO exp.r (corp_id, broadcast_id, customer_id, employee_id, chunk_id, send_day, status, reason, updated_at)
  SELECT 1, 100, cid, emp, chunk, current_date, 'pending', '', now() FROM src ORDER BY chunk, cid;
DELETE FROM exp.r; VACUUM exp.r; CHECKPOINT;

\echo '(3) without the chunk index, customer order'
DROP INDEX exp.r_chunk;
INSERT INTO exp.r (corp_id, broadcast_id, customer_id, employee_id, chunk_id, send_day, status, reason, updated_at)
  SELECT 1, 100, cid, emp, chunk, current_date, 'pending', '', now() FROM src ORDER BY cid;
DELETE FROM exp.r; VACUUM exp.r; CHECKPOINT;

\echo '(4) without the chunk and caps indexes, customer order'
DROP INDEX exp.r_caps;
INSERT INTO exp.r (corp_id, broadcast_id, customer_id, employee_id, chunk_id, send_day, status, reason, updated_at)
  SELECT 1, 100, cid, emp, chunk, current_date, 'pending', '', now() FROM src ORDER BY cid;
DELETE FROM exp.r; VACUUM exp.r; CHECKPOINT;

\echo '(5) primary key only'
DROP INDEX exp.r_uq;
INSERT INTO exp.r (corp_id, broadcast_id, customer_id, employee_id, chunk_id, send_day, status, reason, updated_at)
  SELECT 1, 100, cid, emp, chunk, current_date, 'pending', '', now() FROM src ORDER BY cid;
DELETE FROM exp.r; VACUUM exp.r; CHECKPOINT;

\echo '(6) no index at all (heap and sequence only)'
ALTER TABLE exp.r DROP CONSTRAINT r_pkey;
INSERT INTO exp.r (corp_id, broadcast_id, customer_id, employee_id, chunk_id, send_day, status, reason, updated_at)
  SELECT 1, 100, cid, emp, chunk, current_date, 'pending', '', now() FROM src ORDER BY cid;

DROP SCHEMA exp CASCADE;
