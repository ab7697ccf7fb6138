-- Dispatches ready tasks into inboxes, at most `window` entries per inbox.
-- The runner decided readiness from the graph; this script re-checks what
-- may have changed since (status still pending, same agent) and does the move
-- atomically: status → assigned, attempt + 1, message into the inbox.
-- Called by Store::dispatch, after lib/declared.lua.
-- KEYS[1] the events stream, KEYS[2] the backlog, then the declared keys:
-- each task's hash (kind `task`) and each agent's inbox (`inbox`), and
-- what the script asks for (`need`) once it has read the tasks: the agent
-- hash and heartbeat key (`agent`, `alive`) of a task's last worker.
-- ARGV[1] the declared keys, then triples (task id, agent name, window); an
-- empty agent name means the town backlog, which workers with `backlog`
-- take from.
-- Returns {dispatched ids, ids with no record}: a record that is gone (a
-- server that restarted empty, a key deleted by hand) is for the runner to
-- restore from the file, not a task to skip silently. Or a `need` reply,
-- having changed nothing.
local events_key, backlog = KEYS[1], KEYS[2]
local t = redis.call('TIME')
local now = tostring(t[1] * 1000 + math.floor(t[2] / 1000))

-- The keys of one triple; nil for one not declared.
local function keys_of(id, agent)
  local inbox = backlog
  if agent ~= '' then inbox = declared('inbox', agent) end
  return declared('task', id), inbox
end

-- Every key first, before anything changes: the last worker of a task
-- that ran before is only known from its record.
for i = 2, #ARGV, 3 do
  local key = keys_of(ARGV[i], ARGV[i + 1])
  if key then
    local last = redis.pcall('HGET', key, 'worker')
    if type(last) == 'string' and last ~= '' then
      declared('agent', last)
      declared('alive', last)
    end
  end
end
if needs_keys() then
  return need_reply()
end

local sent, missing = {}, {}
for i = 2, #ARGV, 3 do
  local id, agent, window = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local key, inbox = keys_of(id, agent)
  -- pcall: a key that is no hash (edited by hand) must not fail the whole
  -- call; it is reported like a missing record, and the runner's next read
  -- finds it corrupt.
  local cur = redis.pcall('HMGET', key, 'status', 'worker', 'agent', 'attempt')
  if cur.err then
    cur = {}
    missing[#missing + 1] = id
  elseif not cur[1] and redis.call('EXISTS', key) == 0 then
    missing[#missing + 1] = id
  end
  local status, last = cur[1], cur[2]
  -- The runner decided from what it read; a sync since may have given the
  -- task another agent (its event makes the runner read it again).
  local same_agent = (cur[3] or '') == agent
  -- A previous attempt that was cancelled or finished by the file may still
  -- be stopping on its worker: never start the next one alongside it.
  local stopping = last and last ~= '' and
    redis.call('HGET', declared('agent', last), 'task') == id and
    redis.call('EXISTS', declared('alive', last)) == 1
  -- An attempt edited into something else is a corrupt record the runner
  -- reports by key and field; HINCRBY would fail the whole call.
  local counted = not cur[4] or string.find(cur[4], '^%d+$') ~= nil
  if status == 'pending' and same_agent and counted and not stopping
    and redis.call('LLEN', inbox) < window then
    local attempt = redis.call('HINCRBY', key, 'attempt', 1)
    redis.call('HSET', key, 'status', 'assigned', 'assigned_to', agent, 'updated', now)
    redis.call('HDEL', key, 'retry_at', 'worker')
    redis.call('RPUSH', inbox, cjson.encode({ kind = 'task', task = id, attempt = attempt }))
    redis.call('XADD', events_key, 'MAXLEN', '~', '100000', '*',
      'kind', 'dispatched', 'task', id, 'agent', agent, 'attempt', tostring(attempt), 'at', now)
    sent[#sent + 1] = id
  end
end
return { sent, missing }
