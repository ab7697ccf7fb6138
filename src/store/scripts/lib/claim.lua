-- The claim of one message a worker took from an inbox or the backlog
-- (docs/PROTOCOL.md "claim"), shared by claim.lua (a claim on its own) and
-- finish.lua (a busy worker's next message, in the call that reports the
-- last one). Defines `claim(k, worker, raw, assignee, again, logs, now)`,
-- whose arguments and reply claim.lua describes (`k` holds the worker's
-- keys: `claimed`, `agent`, and the town's `events`, `deadletter`), and
-- `now_ms()`. The task a message names is a declared key
-- (lib/declared.lua): without it the claim answers {'need', 'task', id}
-- before it changes anything. Store::claim and Store::finish_and_take put
-- this file before theirs.

-- The log an attempt writes, as state_dir::task_log names it; "" when that
-- cannot be said here (an id no plan allows: the report records it).
local function log_of(logs, id, attempt)
  if logs == '' or string.find(id, '[^%w._-]') then
    return ''
  end
  local name = id
  if not string.find(id, '[^.]') then
    name = string.rep('%2E', #id)
  end
  return logs .. '/' .. name .. '/' .. attempt .. '.log'
end

-- Whether `text` is a JSON array of strings, as sync writes `tags`.
local function is_string_list(text)
  local ok, v = pcall(cjson.decode, text)
  if not ok or type(v) ~= 'table' then
    return false
  end
  for k, item in pairs(v) do
    if type(k) ~= 'number' or type(item) ~= 'string' then
      return false
    end
  end
  return true
end

local function claim(k, worker, raw, assignee, again, logs, now)
  local claimed = k.claimed

  local function event(kind, task, attempt, ...)
    redis.call('XADD', k.events, 'MAXLEN', '~', '100000', '*',
      'kind', kind, 'task', task, 'agent', worker, 'attempt', attempt, 'at', now, ...)
  end

  local function deadletter(reason)
    redis.call('LREM', claimed, 1, raw)
    redis.call('RPUSH', k.deadletter, raw)
    event('deadletter', '', '', 'reason', reason)
    return { 'deadletter', reason }
  end

  local ok, msg = pcall(cjson.decode, raw)
  if not ok or type(msg) ~= 'table' then
    return deadletter('not a JSON object')
  end

  if msg.kind == 'message' then
    if type(msg.from) ~= 'string' or type(msg.body) ~= 'string' then
      return deadletter('a message needs string fields `from` and `body`')
    end
    redis.call('LREM', claimed, 1, raw)
    event('message', '', '', 'from', msg.from, 'body', msg.body)
    return { 'message', msg.from, msg.body }
  end

  if msg.kind ~= 'task' then
    return deadletter('unknown kind')
  end
  local id, n = msg.task, msg.attempt
  if type(id) ~= 'string' or id == '' or type(n) ~= 'number' or n < 1 or n ~= math.floor(n) then
    return deadletter('a task message needs a string `task` and a positive integer `attempt`')
  end
  local attempt = string.format('%d', n)
  local log = log_of(logs, id, attempt)

  local key = declared('task', id)
  if not key then
    return { 'need', 'task', id }
  end
  local cur = redis.call('HMGET', key, 'status', 'attempt', 'assigned_to', 'worker',
    'description', 'tags', 'parent', 'retries', 'timeout', 'facts', 'budget')
  local status, current, assigned, owner = cur[1], cur[2] or '0', cur[3] or '', cur[4] or ''
  local function run()
    return { 'run', id, attempt, cur[5] or '', cur[6] or '[]', cur[7] or '', cur[8] or '', cur[9] or '',
      cur[10] or '', cur[11] or '' }
  end

  if again and status == 'running' and current == attempt and owner == worker then
    return run()
  end

  local reason
  if not status then
    reason = 'no such task'
  elseif status ~= 'assigned' then
    reason = 'the task is ' .. status
  elseif current ~= attempt then
    reason = 'attempt ' .. attempt .. ' is stale, the task is at attempt ' .. current
  elseif assigned ~= assignee then
    reason = 'the task is assigned to ' .. (assigned == '' and 'the backlog' or '`' .. assigned .. '`')
  end
  if reason then
    redis.call('LREM', claimed, 1, raw)
    event('dropped', id, attempt, 'reason', reason)
    return { 'stale', reason, id, attempt }
  end

  -- A record edited by hand may hold what the worker cannot read: such a
  -- task is failed here, naming the key and field, rather than marked
  -- running by a worker that then cannot run it (it would stay running).
  local tags = cur[6] or ''
  local bad = tags ~= '' and not is_string_list(tags)
  if bad then
    local what = 'field `tags` of `' .. key .. '` is not a JSON list of strings'
    redis.call('LREM', claimed, 1, raw)
    redis.call('HSET', key, 'status', 'failed', 'finished', now, 'updated', now,
      'error', what .. '; fix it with `redis-cli`, then `tt retry ' .. id .. '`')
    event('corrupt', id, attempt, 'status', 'failed', 'reason', what)
    return { 'stale', what, id, attempt }
  end

  -- The message stays in `claimed` while the command runs: finish.lua removes
  -- it, and a runner that sees this worker's heartbeat expire requeues it.
  -- What the previous attempt left describes that attempt, not this one.
  if log ~= '' then
    redis.call('HSET', key, 'status', 'running', 'worker', worker, 'started', now, 'updated', now,
      'log', log)
    redis.call('HDEL', key, 'finished', 'exit_code', 'error', 'output', 'retry_at', 'reason')
  else
    redis.call('HSET', key, 'status', 'running', 'worker', worker, 'started', now, 'updated', now)
    redis.call('HDEL', key, 'finished', 'exit_code', 'error', 'output', 'log', 'retry_at', 'reason')
  end
  local agent_key = k.agent
  redis.call('HSET', agent_key, 'state', 'working', 'task', id, 'attempt', attempt)
  -- Where this attempt's log is, on which machine: the task hash keeps
  -- only the latest attempt's, and a log path means nothing without its host.
  local host = redis.call('HGET', agent_key, 'host') or ''
  event('started', id, attempt, 'status', 'running', 'log', log, 'host', host)
  return run()
end

-- Redis time in ms: one clock for every machine.
local function now_ms()
  local t = redis.call('TIME')
  return t[1] * 1000 + math.floor(t[2] / 1000)
end
