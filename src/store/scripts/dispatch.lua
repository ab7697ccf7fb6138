-- Dispatches ready tasks into inboxes, at most `window` entries per inbox.
-- The runner decided readiness from the graph; this script re-checks what
-- may have changed since (status still pending, same agent) and does the move
-- atomically: status → assigned, attempt + 1, message into the inbox.
-- ARGV[1] key prefix, then triples (task id, agent name, window); an empty
-- agent name means the town backlog, which workers with `backlog` take from.
-- Returns {dispatched ids, ids with no record}: a record that is gone (a
-- server that restarted empty, a key deleted by hand) is for the runner to
-- restore from the file, not a task to skip silently.
local prefix = ARGV[1]
local t = redis.call('TIME')
local now = tostring(t[1] * 1000 + math.floor(t[2] / 1000))
local events_key = prefix .. 'events'
local sent, missing = {}, {}
for i = 2, #ARGV, 3 do
  local id, agent, window = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local key = prefix .. 'task:' .. id
  local inbox = prefix .. 'inbox:' .. agent
  if agent == '' then inbox = prefix .. 'backlog' end
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
    redis.call('HGET', prefix .. 'agent:' .. last, 'task') == id and
    redis.call('EXISTS', prefix .. 'alive:' .. last) == 1
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
