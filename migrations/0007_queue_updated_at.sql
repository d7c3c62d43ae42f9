-- The queue's own statements (claim, complete) set updated_at themselves; a WHEN clause then skips the
-- PL/pgSQL call the trigger would make for each row they touch. Statements that leave updated_at alone
-- still get it set by the trigger.
DROP TRIGGER tasks_updated_at ON tasks;
CREATE TRIGGER tasks_updated_at BEFORE UPDATE ON tasks FOR EACH ROW
    WHEN (NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at) EXECUTE FUNCTION set_updated_at();
