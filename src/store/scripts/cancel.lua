-- Cancels tasks: the one named on the command line first, then (for a
-- group) its descendants. Called by Store::cancel, which decided the
-- descendants from the graph, after lib/declared.lua; this script
-- re-checks each status, so a task that finished meanwhile stays finished.
-- KEYS[1] the events stream, KEYS[2] the backlog, then the declared keys:
-- each task's hash (kind `task`), and what the script asks for (`need`)
-- once it has read the tasks: the control list of a running task's worker
-- (`control`), the inbox an assigned task waits in (`inbox`).
-- ARGV[1] the declared keys, then pairs (task id, reason).
-- Returns, per pair, {status before, 1 if cancelled else 0}; the status is
-- "" for a task that does not exist. Or a `need` reply, having changed
-- nothing.
local events, backlog = KEYS[1], KEYS[2]
local t = redis.call('TIME')
local now = tostring(t[1] * 1000 + math.floor(t[2] / 1000))
local final = { completed = true, failed = true, cancelled = true }

-- What a pair finds, and the keys it uses: `need` is answered before
-- anything changes, and the second pass reads again (a task named twice
-- is cancelled once).
local function read(id)
  local key = declared('task', id)
  if not key then
    return {}
  end
  local cur = redis.call('HMGET', key, 'status', 'worker', 'attempt', 'assigned_to')
  local item = { key = key, status = cur[1], worker = cur[2], attempt = cur[3] or '0',
    assigned_to = cur[4] }
  if final[item.status] then
    return item
  end
  if item.status == 'running' and item.worker then
    item.control = declared('control', item.worker)
  elseif item.status == 'assigned' and item.assigned_to then
    -- An empty agent is the town backlog.
    item.inbox = item.assigned_to == '' and backlog or declared('inbox', item.assigned_to)
  end
  return item
end
for i = 2, #ARGV, 2 do
  read(ARGV[i])
end
if needs_keys() then
  return need_reply()
end

local out = {}
for i = 2, #ARGV, 2 do
  local id, reason = ARGV[i], ARGV[i + 1]
  local item = read(id)
  local status, attempt = item.status, item.attempt
  if not status then
    out[#out + 1] = { '', 0 }
  elseif final[status] then
    out[#out + 1] = { status, 0 }
  else
    local who = ''
    if item.control then
      -- The worker stops that attempt's process; its finish report then
      -- finds the task cancelled and changes nothing.
      redis.call('LPUSH', item.control,
        cjson.encode({ kind = 'stop', task = id, attempt = tonumber(attempt) or 0 }))
      who = item.worker
    elseif item.inbox then
      -- Take the message out of the inbox so it stops holding a place in
      -- the agent's window (a worker would drop it at claim anyway).
      for _, raw in ipairs(redis.call('LRANGE', item.inbox, 0, -1)) do
        local ok, m = pcall(cjson.decode, raw)
        if ok and type(m) == 'table' and m.kind == 'task' and m.task == id
          and tostring(m.attempt) == attempt then
          redis.call('LREM', item.inbox, 1, raw)
        end
      end
      who = item.assigned_to
    end
    redis.call('HSET', item.key, 'status', 'cancelled', 'reason', reason,
      'updated', now, 'finished', now)
    redis.call('XADD', events, 'MAXLEN', '~', '100000', '*',
      'kind', 'cancelled', 'task', id, 'agent', who, 'attempt', attempt,
      'at', now, 'from', status, 'reason', reason)
    out[#out + 1] = { status, 1 }
  end
end
return out
