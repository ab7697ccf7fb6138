-- Keeps what an attempt learned (its facts: the session, tokens, cost)
-- when it ends without a report: its worker shut down and left the task
-- `running` for recovery. The facts go on the task, where the claim of the
-- next attempt finds the session to resume, and into the town's usage
-- (lib/usage.lua, put before this file). Only while the task is still
-- `running` with this attempt on this worker.
-- KEYS[1] the task hash, KEYS[2] the town's usage hash, KEYS[3] the
-- worker's agent hash.
-- ARGV[1] attempt, ARGV[2] worker id, ARGV[3] facts (a JSON object).
-- Returns 1 when kept, 0 when the task moved on.
local key, usage, agent_key = KEYS[1], KEYS[2], KEYS[3]
local attempt, worker, facts = ARGV[1], ARGV[2], ARGV[3]
local cur = redis.call('HMGET', key, 'status', 'attempt', 'worker')
if cur[1] ~= 'running' or cur[2] ~= attempt or cur[3] ~= worker then
  return 0
end
redis.call('HSET', key, 'facts', facts)
count_usage(usage, key, agent_key, attempt, facts)
return 1
