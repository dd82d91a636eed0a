-- The least privilege a dedicated role needs to run rekey. Run once by an
-- administrator (a superuser, or a role with CREATEROLE that owns the tables
-- and may create schemas in the database), connected to the database:
--
--   psql -v role=rekey -v tables='public.accounts, public.users' -f sql/grants.sql
--
-- role (default rekey): the role rekey connects as; created (LOGIN, no
-- password: set one, or use your authentication) if missing.
-- state_schema (default rekey): rekey's --state-schema.
-- schemas (default public): the schemas of the tables, comma-separated.
-- tables: every table rekey rotates, comma-separated, schema-qualified; list
-- each partition and inheritance child too (a grant on a parent does not
-- reach a partition read directly, and rekey reads each one directly).
-- The role needs no CREATE on the database and no superuser.
\set ON_ERROR_STOP on
\if :{?role}
\else
  \set role rekey
\endif
\if :{?state_schema}
\else
  \set state_schema rekey
\endif
\if :{?schemas}
\else
  \set schemas public
\endif
\if :{?tables}
\else
  DO $$ BEGIN RAISE EXCEPTION 'sql/grants.sql: set -v tables=SCHEMA.TABLE[,...] (the tables rekey rotates)'; END $$;
\endif

SELECT format('CREATE ROLE %I LOGIN', :'role') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role')
\gexec

-- 1. rotate's state: a schema the role owns. rekey creates its tables there on
--    first use; it never needs CREATE on the database once the schema exists.
SELECT format('CREATE SCHEMA IF NOT EXISTS %I AUTHORIZATION %I', :'state_schema', :'role')
\gexec

-- 2. rotate: SELECT and UPDATE on each table it rewrites (or, column by column:
--    SELECT on the primary key and the encrypted columns, UPDATE on the
--    encrypted columns). rotate checks these before it writes (exit 2 names
--    what is missing).
SELECT format('GRANT USAGE ON SCHEMA %s TO %I', :'schemas', :'role')
\gexec
SELECT format('GRANT SELECT, UPDATE ON TABLE %s TO %I', :'tables', :'role')
\gexec

-- 3. discover, rotate --discover and the gate (verify --discover): SELECT on
--    everything they read, which is every table and column of every schema.
--    pg_read_all_data (PostgreSQL 14+) grants exactly that; on older servers
--    GRANT USAGE on each schema and SELECT ON ALL TABLES IN SCHEMA instead.
--    What the role cannot read fails the gate (NOT CHECKED), never passes it.
SELECT format('GRANT pg_read_all_data TO %I', :'role')
\gexec

-- 4. --max-replica-lag (without it rotate exits 2 when the option is given),
--    and the gate's view of other roles' open transactions: pg_read_all_stats
--    (or pg_monitor, which includes it).
SELECT format('GRANT pg_read_all_stats TO %I', :'role')
\gexec
