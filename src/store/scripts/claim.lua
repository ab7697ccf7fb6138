-- Claims one message that a worker moved (BLMOVE) from its agent's inbox,
-- or from the backlog, into its claimed list: `claim` of lib/claim.lua,
-- which Store::claim puts before this file, after lib/declared.lua.
-- KEYS[1] the worker's claimed list, KEYS[2] its agent hash, KEYS[3] the
-- events stream, KEYS[4] the deadletter list, then the declared keys: the
-- hash of the task the message names (kind `task`).
-- ARGV[1] the declared keys, ARGV[2] worker id, ARGV[3] the raw message,
-- ARGV[4] the `assigned_to` a task must have to be ours (the agent name;
-- "" for backlog work), ARGV[5] "1" when this repeats a claim whose reply
-- was lost (the connection dropped): a task this worker already started
-- with that attempt is handed back instead of dropped. ARGV[6] the
-- worker's log directory (`<project>/.tt/logs`, "" if none): the
-- attempt's log, `<dir>/<task>/<attempt>.log` (state_dir::task_log), is
-- recorded as `log` so `tt task` shows where to follow it while it runs.
-- Returns one of
--   {'run', id, attempt, description, tags (JSON), parent, retries, timeout,
--    facts, budget}  (facts: what the previous attempt learned, JSON, ""
--    for none: a retry resumes its session; budget: the task's own, JSON,
--    "" for none)
--   {'stale', reason, id, attempt}  (dropped: cancelled, reassigned, old attempt)
--   {'message', from, body}    (a direct message: recorded, never run)
--   {'deadletter', reason}     (unreadable: moved to the deadletter list)
--   {'need', 'task', id}       (the task's key was not declared: nothing done)

local k = { claimed = KEYS[1], agent = KEYS[2], events = KEYS[3], deadletter = KEYS[4] }
return claim(k, ARGV[2], ARGV[3], ARGV[4], ARGV[5] == '1', ARGV[6] or '', tostring(now_ms()))
