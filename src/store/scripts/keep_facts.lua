-- Puts what a running attempt learned (its facts: the session, tokens,
-- cost) on its task while it is still `running` with this attempt on this
-- worker, where the claim of the next attempt finds the session to resume;
-- `facts_attempt` says whose facts they are. Two uses:
--   note: while the attempt runs (a worker killed outright never reports;
--     recovery, in worker.lua, counts what was noted);
--   keep: when it ends without a report (its worker shut down and left the
--     task for recovery): also counted in the town's usage now
--     (lib/usage.lua, put before this file).
-- KEYS[1] the task hash, KEYS[2] the town's usage hash, KEYS[3] the
-- worker's agent hash.
-- ARGV[1] attempt, ARGV[2] worker id, ARGV[3] facts (a JSON object),
-- ARGV[4] 'keep' or 'note'. Returns 1 when put, 0 when the task moved on.
local key, usage, agent_key = KEYS[1], KEYS[2], KEYS[3]
local attempt, worker, facts, use = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local cur = redis.call('HMGET', key, 'status', 'attempt', 'worker')
if cur[1] ~= 'running' or cur[2] ~= attempt or cur[3] ~= worker then
  return 0
end
redis.call('HSET', key, 'facts', facts, 'facts_attempt', attempt)
if use == 'keep' then
  count_usage(usage, key, agent_key, attempt, facts)
end
return 1
