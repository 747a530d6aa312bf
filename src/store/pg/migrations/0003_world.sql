-- 3: the version of the shared state decisions rest on.
--
-- Every replica keeps in memory what its decisions need (cooldowns, changes in flight,
-- floors, pauses, schedule openings, guardrail counts). Another replica's write can make
-- that memory stale, so each write that changes it bumps `world.version` (statement
-- triggers below), a replica reads the version before it decides and reloads its memory
-- when the version moved, and a change is recorded only if the version is still the one
-- its decision rested on (checked under this row's lock, in the transaction that records
-- the change). Alarms, skips, looks without a change and lease renewals do not bump it.
CREATE TABLE world (
    id      boolean PRIMARY KEY DEFAULT true CHECK (id),
    version bigint  NOT NULL
);
INSERT INTO world (id, version) VALUES (true, 0);

CREATE FUNCTION world_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE world SET version = version + 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER changes_move_world
    AFTER INSERT OR DELETE OR UPDATE OF phase, finished_at, unsent ON changes
    FOR EACH STATEMENT EXECUTE FUNCTION world_moved();
CREATE TRIGGER pauses_move_world
    AFTER INSERT OR DELETE OR UPDATE ON pauses
    FOR EACH STATEMENT EXECUTE FUNCTION world_moved();
CREATE TRIGGER baselines_move_world
    AFTER UPDATE OF baseline, baseline_since ON instances
    FOR EACH STATEMENT EXECUTE FUNCTION world_moved();
CREATE TRIGGER schedule_runs_move_world
    AFTER INSERT OR DELETE ON schedule_runs
    FOR EACH STATEMENT EXECUTE FUNCTION world_moved();

-- Replicas' duties that one replica does at a time (looks, schedules, retention, the
-- outbox of replicas gone) are held with session advisory locks; a replica's row says
-- which of its live settings must match the others'.
ALTER TABLE replicas ADD COLUMN address text;
