-- Notes what a running attempt's output said so far (its facts: the
-- session, tokens so far) on its task, while it runs: a worker killed
-- outright never reports, and this is what its retry resumes and what
-- recovery counts. Not counted in the town's usage here (the attempt's
-- report or recovery counts it once); `facts_attempt` says whose facts
-- they are. Only while the task is `running` with this attempt on this
-- worker.
-- KEYS[1] the task's hash. ARGV[1] attempt, ARGV[2] worker id, ARGV[3]
-- facts (a JSON object). Returns 1 when noted, 0 when the task moved on.
local key = KEYS[1]
local attempt, worker, facts = ARGV[1], ARGV[2], ARGV[3]
local cur = redis.call('HMGET', key, 'status', 'attempt', 'worker')
if cur[1] ~= 'running' or cur[2] ~= attempt or cur[3] ~= worker then
  return 0
end
redis.call('HSET', key, 'facts', facts, 'facts_attempt', attempt)
return 1
