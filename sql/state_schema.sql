-- rekey's state schema. __SCHEMA__ is replaced by --state-schema (quoted).
-- Nothing here ever holds a key or a plaintext: keys appear as fingerprints,
-- rows as their primary key.
-- The schema itself is created first when missing (db/state_store.cpp), or
-- beforehand by an administrator for a role without CREATE on the database
-- (sql/grants.sql); this DDL runs only while one of the tables is missing.

CREATE TABLE IF NOT EXISTS __SCHEMA__.runs (
  id                   bigserial PRIMARY KEY,
  targets              text        NOT NULL,  -- sorted schema.table.column list, one per line
  new_key_fingerprint  text        NOT NULL,
  old_key_fingerprints text        NOT NULL,
  status               text        NOT NULL CHECK (status IN ('running', 'stopped', 'finished', 'failed')),
  command              text        NOT NULL,  -- the command line that resumes this run
  runner               text        NOT NULL,  -- user@host pid
  started_at           timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now(),
  finished_at          timestamptz,
  exit_code            integer,
  superseded_by        bigint       -- the run that `rotate --restart` put in its place: never resumed
);
CREATE INDEX IF NOT EXISTS runs_targets ON __SCHEMA__.runs (targets, id);

-- One row per run and table: the keyset checkpoint and the counts, updated in
-- the same transaction as the batch they describe.
CREATE TABLE IF NOT EXISTS __SCHEMA__.table_progress (
  run_id          bigint      NOT NULL REFERENCES __SCHEMA__.runs (id) ON DELETE CASCADE,
  table_name      text        NOT NULL,  -- schema.table as displayed
  last_key        jsonb,                 -- JSON array of the key's text values; NULL: not started
  done            boolean     NOT NULL DEFAULT false,
  rows_seen       bigint      NOT NULL DEFAULT 0,
  estimated_rows  bigint      NOT NULL DEFAULT 0,
  counts          jsonb       NOT NULL DEFAULT '{}',  -- {column: {rotated, already_new, null, ...}}
  updated_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (run_id, table_name)
);

-- Values no key could decrypt. Never modified by rekey; listed for the operator.
CREATE TABLE IF NOT EXISTS __SCHEMA__.failures (
  run_id       bigint      NOT NULL REFERENCES __SCHEMA__.runs (id) ON DELETE CASCADE,
  table_name   text        NOT NULL,
  column_name  text        NOT NULL,
  primary_key  text        NOT NULL,
  reason       text        NOT NULL,
  recorded_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (run_id, table_name, column_name, primary_key)
);

-- Rows whose compare-and-swap failed (the application changed them since they
-- were read): read again before the table is done. A row not found when read
-- again (deleted, or its key changed) stays, with not_found_at set; the final
-- sweep rotates it wherever it went.
CREATE TABLE IF NOT EXISTS __SCHEMA__.pending (
  run_id       bigint NOT NULL REFERENCES __SCHEMA__.runs (id) ON DELETE CASCADE,
  table_name   text   NOT NULL,
  primary_key  jsonb  NOT NULL,
  not_found_at timestamptz,
  PRIMARY KEY (run_id, table_name, primary_key)
);
-- Columns added since the first version are added to an older schema by
-- db/state_store.cpp, only where missing (an ALTER TABLE would lock the
-- tables a running rekey writes to even when it has nothing to do).
