-- Records how one attempt of a task ended. Called by Store::finish.
-- ARGV[1] key prefix, ARGV[2] worker id, ARGV[3] the raw claimed message,
-- ARGV[4] task id, ARGV[5] attempt, ARGV[6] exit code ("" when the command
-- did not exit by itself: not started, killed, timed out, stopped),
-- ARGV[7] error ("" on success), ARGV[8] output tail, ARGV[9] log path,
-- ARGV[10] retries allowed, ARGV[11] backoff before a retry, ms, ARGV[12]
-- "1" when this repeats a report whose reply was lost (a connection drop):
-- then the outcome this very report already recorded is returned as is.
-- Only a task still `running` with this attempt on this worker changes;
-- anything else is a stale report (event `rejected`). Either way the
-- message leaves `claimed:<worker>`.
-- Returns {'completed'} | {'retry', retry_at} | {'failed'} | {'stale', reason}.
local prefix, worker, raw, id, attempt = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local code, err, output, log = ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local retries, backoff = tonumber(ARGV[10]) or 0, tonumber(ARGV[11]) or 0
local again = ARGV[12] == '1'
local t = redis.call('TIME')
local now_ms = t[1] * 1000 + math.floor(t[2] / 1000)
local now = tostring(now_ms)
local key = prefix .. 'task:' .. id

local function event(kind, ...)
  redis.call('XADD', prefix .. 'events', 'MAXLEN', '~', '100000', '*',
    'kind', kind, 'task', id, 'agent', worker, 'attempt', attempt, 'at', now, ...)
end

redis.call('LREM', prefix .. 'claimed:' .. worker, 1, raw)

-- The worker is free again, whatever the task's record says; only clear
-- the agent's task if it is this one (a report may come late).
local agent_key = prefix .. 'agent:' .. worker
local busy = redis.call('HMGET', agent_key, 'task', 'attempt')
if busy[1] == id and busy[2] == attempt then
  redis.call('HSET', agent_key, 'state', 'idle')
  redis.call('HDEL', agent_key, 'task', 'attempt', 'command_pgid')
end

local cur = redis.call('HMGET', key, 'status', 'attempt', 'worker', 'retry_at')
if again and cur[2] == attempt and cur[3] == worker then
  if cur[1] == 'completed' or cur[1] == 'failed' then
    return { cur[1] }
  elseif cur[1] == 'pending' and cur[4] then
    return { 'retry', cur[4] }
  end
end
local reason
if not cur[1] then
  reason = 'no such task'
elseif cur[1] ~= 'running' then
  reason = 'the task is ' .. cur[1]
elseif cur[2] ~= attempt then
  reason = 'attempt ' .. attempt .. ' is stale, the task is at attempt ' .. (cur[2] or '0')
elseif cur[3] ~= worker then
  reason = 'the task runs on `' .. (cur[3] or '') .. '`'
end
if reason then
  event('rejected', 'reason', reason, 'exit_code', code)
  return { 'stale', reason }
end

redis.call('HSET', key, 'finished', now, 'updated', now, 'output', output, 'log', log)
if code ~= '' then
  redis.call('HSET', key, 'exit_code', code)
else
  redis.call('HDEL', key, 'exit_code')
end

if code == '0' and err == '' then
  redis.call('HSET', key, 'status', 'completed')
  redis.call('HDEL', key, 'error', 'reason', 'retry_at')
  event('completed', 'status', 'completed', 'exit_code', code)
  return { 'completed' }
end

if err == '' then err = 'exited with code ' .. code end
if tonumber(attempt) <= retries then
  local retry_at = tostring(now_ms + backoff)
  redis.call('HSET', key, 'status', 'pending', 'error', err, 'retry_at', retry_at,
    'reason', 'attempt ' .. attempt .. ' failed, retrying (' .. attempt .. ' of ' .. retries .. ' retries)')
  event('retried', 'status', 'pending', 'exit_code', code, 'reason', err, 'retry_at', retry_at)
  return { 'retry', retry_at }
end

redis.call('HSET', key, 'status', 'failed', 'error', err,
  'reason', 'attempt ' .. attempt .. ' failed')
redis.call('HDEL', key, 'retry_at')
event('failed', 'status', 'failed', 'exit_code', code, 'reason', err)
return { 'failed' }
