-- 2: several replicas on one database.

-- Fencing numbers, for open changes and alarm claims alike: each grant of a lease (an
-- open, a takeover, a claim) takes the next one, so a holder's number is larger than
-- every earlier holder's. Keep CACHE 1 (the default): with a cache, sessions would hand
-- out numbers out of order.
CREATE SEQUENCE fences AS bigint CACHE 1;

-- An open change is held by one replica (`owner`, its id) until `lease_until` (the
-- database's clock), under fencing number `fence`; every write of the owner is
-- conditional on all three. A finished change keeps them: who finished it, under which.
ALTER TABLE changes ADD COLUMN owner       text;
ALTER TABLE changes ADD COLUMN lease_until timestamptz;
ALTER TABLE changes ADD COLUMN fence       bigint;
ALTER TABLE changes ADD CONSTRAINT changes_open_held
    CHECK (phase NOT IN ('intended', 'submitted')
           OR (owner IS NOT NULL AND lease_until IS NOT NULL AND fence IS NOT NULL));
-- The single-flight lock: at most one open change per instance, whichever replica made it.
CREATE UNIQUE INDEX changes_open_per_instance ON changes (instance_id)
    WHERE phase IN ('intended', 'submitted');
-- Survivors look for expired leases.
CREATE INDEX changes_open_by_lease ON changes (lease_until, id)
    WHERE phase IN ('intended', 'submitted');

-- An undecided alarm is claimed by the replica deciding it (the one that accepted it,
-- or a survivor) until `claimed_until`, under `fence`.
ALTER TABLE alarms ADD COLUMN owner         text;
ALTER TABLE alarms ADD COLUMN claimed_until timestamptz;
ALTER TABLE alarms ADD COLUMN fence         bigint;

-- A schedule's window opening makes at most one change on an instance, whichever
-- replica saw it open.
CREATE UNIQUE INDEX schedule_runs_one_change_per_opening
    ON schedule_runs (schedule, instance_id, opened_at) WHERE decision <> 'skip';

-- The replicas sharing this database: each writes its row at start and its heartbeat
-- while alive. `live` is its mode (false: a dry run); `rules_hash` what `/status` shows.
CREATE TABLE replicas (
    id         text        PRIMARY KEY,
    started_at timestamptz NOT NULL DEFAULT now(),
    heartbeat  timestamptz NOT NULL DEFAULT now(),
    live       boolean     NOT NULL,
    rules_hash text        NOT NULL
);

-- The views that show every column of a table, again with the new ones (a view's `*` is
-- expanded when it is created).
DROP VIEW change_history;
CREATE VIEW change_history AS
SELECT c.*, round(extract(epoch FROM c.finished_at - c.intended_at))::bigint AS took_seconds
  FROM changes AS c
 ORDER BY c.id DESC;

DROP VIEW latest_finished_changes;
CREATE VIEW latest_finished_changes AS
SELECT DISTINCT ON (instance_id) *
  FROM changes WHERE finished_at IS NOT NULL
 ORDER BY instance_id, finished_at DESC, id DESC;

DROP VIEW pending_alarms;
CREATE VIEW pending_alarms AS
SELECT * FROM alarms WHERE decided_at IS NULL ORDER BY received_at, id;
