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
  superseded_by        bigint,      -- the run that `rotate --restart` put in its place: never resumed
  rollback_of          bigint,      -- the run this one takes back (`rekey rollback --run N`)
  first_old_key        text,        -- the first old key when the run began (a resume never changes it): what a rollback goes back to
  scope                jsonb        -- what was asked: {"columns": [...], "discover": bool, "exclude": [...]}
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

-- The work units of a run, which writer lanes (--workers, and other hosts
-- with --join) claim: the key ranges of each table ('range', chunk 0, 1, ...
-- in key order), then each table's finish once its ranges are done ('finish':
-- the pending rows and the final sweep), then the run's ('run', table_name
-- '': the census of what rotate does not cover and the exit code). A unit is
-- claimed FOR UPDATE SKIP LOCKED with a lease on the database's clock; every
-- batch commits with its unit's checkpoint, counts and a lease extension,
-- guarded by owner and epoch, so a worker that lost its lease (paused past
-- it, cut off) can never move a checkpoint another worker now owns.
CREATE TABLE IF NOT EXISTS __SCHEMA__.chunks (
  run_id      bigint      NOT NULL REFERENCES __SCHEMA__.runs (id) ON DELETE CASCADE,
  table_name  text        NOT NULL,
  chunk       integer     NOT NULL,
  position    integer     NOT NULL DEFAULT 0,  -- the table's place among the run's targets: claims follow it
  kind        text        NOT NULL CHECK (kind IN ('range', 'finish', 'run')),
  lower_key   jsonb,                 -- rows with a key after it (NULL: from the first)
  upper_key   jsonb,                 -- up to and including it (NULL: to the last)
  last_key    jsonb,                 -- checkpoint: the rows up to it are done
  status      text        NOT NULL DEFAULT 'todo' CHECK (status IN ('todo', 'running', 'done')),
  owner       text,                  -- the worker holding it (--worker-name)
  owner_lock  integer,               -- that worker's liveness lock (db/table_lock.h): once nobody holds it, the lease is over
  epoch       bigint      NOT NULL DEFAULT 0,  -- one more at each claim; writes are fenced by it
  lease_until timestamptz,
  claimed_at  timestamptz,
  rows_seen   bigint      NOT NULL DEFAULT 0,
  counts      jsonb       NOT NULL DEFAULT '{}',  -- {column: {rotated, ...}} of this unit
  outcome     jsonb,                 -- a finished 'finish' or 'run' unit: what it found
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (run_id, table_name, chunk)
);

-- Each worker's pace under --pace auto (migrate/pace.h), written by its health
-- probe every few hundred milliseconds: the probe's tiny write, and what
-- `rekey status` shows.
CREATE TABLE IF NOT EXISTS __SCHEMA__.pace (
  run_id      bigint      NOT NULL REFERENCES __SCHEMA__.runs (id) ON DELETE CASCADE,
  worker      text        NOT NULL,
  rate        double precision,      -- rows per second; NULL: no limit
  paused      text,                  -- why it is paused, if it is
  reason      text        NOT NULL,  -- why the rate is what it is
  probe_ms    double precision,
  baseline_ms double precision,
  probed_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (run_id, worker)
);
