-- Records how one attempt of a task ended, and may claim the worker's next
-- message in the same call. Called by Store::finish, which puts
-- lib/declared.lua, lib/requeue.lua (`requeues_exhausted`), lib/claim.lua
-- (`claim`, `now_ms`) and lib/usage.lua before this file.
-- KEYS[1] the task hash, KEYS[2] the worker's claimed list, KEYS[3] its
-- agent hash, KEYS[4] the events stream, KEYS[5] the usage hash, KEYS[6]
-- the deadletter list, KEYS[7] the inbox of ARGV[13] (when not ""), then
-- the declared keys: the hashes of the tasks the next message may name
-- (kind `task`; the caller looked at the head of the inbox).
-- ARGV[1] the declared keys, ARGV[2] worker id, ARGV[3] the raw claimed message,
-- ARGV[4] task id, ARGV[5] attempt, ARGV[6] exit code ("" when the command
-- did not exit by itself: not started, killed, timed out, stopped),
-- ARGV[7] error ("" on success), ARGV[8] output tail, ARGV[9] log path,
-- ARGV[10] retries allowed, ARGV[11] backoff before a retry, ms, ARGV[12]
-- "1" when this repeats a report whose reply was lost (a connection drop):
-- then the outcome this very report already recorded is returned as is.
-- ARGV[13] an agent name whose inbox to take the next message from ("" for
-- none), ARGV[14] the worker's log directory (claim.lua's ARGV[6]),
-- ARGV[15] "1" when the worker stopped the command itself because it could
-- not renew its heartbeat: the attempt is requeued (as recovery would do),
-- not counted as a failure (unless requeued too often in a row:
-- lib/requeue.lua).
-- ARGV[16] what the attempt learned (store/facts.rs), a JSON object, "" for
-- none: kept on the task as `facts` (replacing the previous attempt's) and
-- on the event this report writes; its tokens and cost are added to the
-- town's `usage` hash (store/usage.rs) once per attempt, stale reports
-- and retries included: what an attempt spent was spent.
-- Only a task still `running` with this attempt on this worker changes;
-- anything else is a stale report (event `rejected`). Either way the
-- message leaves `claimed:<worker>`.
-- Returns {'completed'} | {'retry', retry_at} | {'failed'} | {'requeued'} |
-- {'stale', reason},
-- followed, when a next message was taken, by that raw message and what
-- claim.lua made of it — {'need', 'task', id} when its task was not one
-- declared: the message is in `claimed`, for the caller to claim.
local key, claimed, agent_key, events = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local usage, deadletter = KEYS[5], KEYS[6]
local worker, raw, id, attempt = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local code, err, output, log = ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local retries, backoff = tonumber(ARGV[10]) or 0, tonumber(ARGV[11]) or 0
local again = ARGV[12] == '1'
local take, logs = ARGV[13] or '', ARGV[14] or ''
local requeue = ARGV[15] == '1'
local facts = ARGV[16] or ''
local finished_ms = now_ms()
local now = tostring(finished_ms)

local function event(kind, ...)
  local extra = { ... }
  if facts ~= '' then
    table.insert(extra, 'facts')
    table.insert(extra, facts)
  end
  redis.call('XADD', events, 'MAXLEN', '~', '100000', '*',
    'kind', kind, 'task', id, 'agent', worker, 'attempt', attempt, 'at', now, unpack(extra))
end

redis.call('LREM', claimed, 1, raw)

-- The town's spending (lib/usage.lua).
count_usage(usage, key, agent_key, attempt, facts)

-- The worker is free again, whatever the task's record says; only clear
-- the agent's task if it is this one (a report may come late).
local function free_worker()
  redis.call('HSET', agent_key, 'state', 'idle')
  redis.call('HDEL', agent_key, 'task', 'attempt', 'command_pgid', 'command_start')
end

-- The outcome, as the reply begins.
local function report()
  local cur = redis.call('HMGET', key, 'status', 'attempt', 'worker', 'retry_at')
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
    local busy = redis.call('HMGET', agent_key, 'task', 'attempt')
    if busy[1] == id and busy[2] == attempt then
      free_worker()
    end
    if again and cur[2] == attempt and cur[3] == worker then
      if cur[1] == 'completed' or cur[1] == 'failed' then
        return { cur[1] }
      elseif cur[1] == 'pending' and requeue then
        return { 'requeued' }
      elseif cur[1] == 'pending' and cur[4] then
        return { 'retry', cur[4] }
      end
    end
    event('rejected', 'reason', reason, 'exit_code', code)
    return { 'stale', reason }
  end
  -- Still running here with this attempt, so nothing requeued it and no new
  -- process took this worker id: the agent hash is this attempt's.
  free_worker()

  -- One HSET and one HDEL per outcome: `exit_code` only when the command
  -- exited by itself; fields a success or a failure does not have go.
  local fields = { 'finished', now, 'updated', now, 'output', output, 'log', log }
  -- A question the attempt left open has nobody left to read its answer.
  local gone = { 'question', 'question_id', 'question_choices', 'question_at' }
  if code ~= '' then
    table.insert(fields, 'exit_code')
    table.insert(fields, code)
  else
    table.insert(gone, 'exit_code')
  end
  if facts ~= '' then
    table.insert(fields, 'facts')
    table.insert(fields, facts)
  else
    table.insert(gone, 'facts')
  end
  local function record(status, ...)
    redis.call('HSET', key, 'status', status, unpack(fields))
    if #gone > 0 or select('#', ...) > 0 then
      local all = { ... }
      for _, f in ipairs(gone) do table.insert(all, f) end
      redis.call('HDEL', key, unpack(all))
    end
  end

  if requeue and requeues_exhausted(key) then
    local reason = 'requeued ' .. MAX_REQUEUES .. ' times in a row: attempt ' .. attempt .. ' ' ..
      err .. '; `tt retry` runs it again'
    for _, f in ipairs({ 'error', err, 'reason', reason }) do
      table.insert(fields, f)
    end
    record('failed', 'retry_at')
    event('failed', 'status', 'failed', 'reason', reason)
    return { 'failed' }
  end
  if requeue then
    local reason = 'requeued: attempt ' .. attempt .. ' ' .. err
    record('pending', 'retry_at')
    redis.call('HSET', key, 'error', err, 'reason', reason)
    event('requeued', 'status', 'pending', 'reason', reason)
    return { 'requeued' }
  end

  -- The attempt really ended: requeues in a row start again.
  table.insert(gone, 'requeues')
  if code == '0' and err == '' then
    record('completed', 'error', 'reason', 'retry_at')
    event('completed', 'status', 'completed', 'exit_code', code)
    return { 'completed' }
  end

  if err == '' then err = 'exited with code ' .. code end
  if tonumber(attempt) <= retries then
    local retry_at = tostring(finished_ms + backoff)
    for _, f in ipairs({ 'error', err, 'retry_at', retry_at,
      'reason', 'attempt ' .. attempt .. ' failed, retrying (' .. attempt .. ' of ' .. retries .. ' retries)' }) do
      table.insert(fields, f)
    end
    record('pending')
    event('retried', 'status', 'pending', 'exit_code', code, 'reason', err, 'retry_at', retry_at)
    return { 'retry', retry_at }
  end

  for _, f in ipairs({ 'error', err, 'reason', 'attempt ' .. attempt .. ' failed' }) do
    table.insert(fields, f)
  end
  record('failed', 'retry_at')
  event('failed', 'status', 'failed', 'exit_code', code, 'reason', err)
  return { 'failed' }
end

local reply = report()
-- A busy worker's next message, taken (LMOVE, as BLMOVE would) and claimed
-- here: one call per task instead of three (BLMOVE, claim, finish). A
-- repeated report first claims again what the lost reply would have
-- handed out, which is still at the head of `claimed`.
if take ~= '' then
  local next_raw = false
  if again then
    next_raw = redis.call('LINDEX', claimed, 0)
  end
  local reclaim = next_raw and true or false
  if not next_raw then
    next_raw = redis.call('LMOVE', KEYS[7], claimed, 'LEFT', 'RIGHT')
  end
  if next_raw then
    table.insert(reply, next_raw)
    local k = { claimed = claimed, agent = agent_key, events = events, deadletter = deadletter }
    for _, v in ipairs(claim(k, worker, next_raw, take, reclaim, logs, now)) do
      table.insert(reply, v)
    end
  end
end
return reply
