-- 3: the version of the shared state decisions rest on.
--
-- Every replica keeps in memory what its decisions need (cooldowns, changes in flight,
-- floors, pauses, schedule openings, guardrail counts). Another replica's write can make
-- that memory stale, so each write that changes it bumps `world.version` (the
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

-- Row triggers with a WHEN: a statement that changes nothing decisions rest on (a fenced
-- write that matched no row, a lease renewal, marking a change unsent) moves nothing.
-- Retention's deletes move nothing either: it deletes only what no rule counts any more.
CREATE TRIGGER changes_opened_move_world
    AFTER INSERT ON changes
    FOR EACH ROW EXECUTE FUNCTION world_moved();
CREATE TRIGGER changes_moved_move_world
    AFTER UPDATE ON changes
    FOR EACH ROW WHEN (OLD.phase IS DISTINCT FROM NEW.phase
                       OR OLD.finished_at IS DISTINCT FROM NEW.finished_at)
    EXECUTE FUNCTION world_moved();
CREATE TRIGGER pauses_move_world
    AFTER INSERT OR UPDATE ON pauses
    FOR EACH ROW EXECUTE FUNCTION world_moved();
CREATE TRIGGER baselines_set_move_world
    AFTER INSERT ON instances
    FOR EACH ROW WHEN (NEW.baseline IS NOT NULL)
    EXECUTE FUNCTION world_moved();
CREATE TRIGGER baselines_moved_move_world
    AFTER UPDATE ON instances
    FOR EACH ROW WHEN (OLD.baseline IS DISTINCT FROM NEW.baseline
                       OR OLD.baseline_since IS DISTINCT FROM NEW.baseline_since)
    EXECUTE FUNCTION world_moved();
CREATE TRIGGER schedule_runs_move_world
    AFTER INSERT ON schedule_runs
    FOR EACH ROW WHEN (NEW.decision <> 'skip')
    EXECUTE FUNCTION world_moved();

-- Replicas' duties that one replica does at a time (looks, schedules, retention) are
-- held with session advisory locks, not rows.
-- A pending delivery is its owner's to send (the replica that recorded its event); once
-- the owner is no longer alive, another replica takes it over, so each event is sent by
-- one replica at a time.
ALTER TABLE deliveries ADD COLUMN owner text;
