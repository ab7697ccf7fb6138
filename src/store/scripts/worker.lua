-- A worker's own records: its agent hash, its heartbeat, the set of
-- workers, and what it leaves in its claimed list. Called by
-- Store::register_worker, heartbeat, worker_stopped and give_back, which
-- put lib/declared.lua, lib/requeue.lua (`requeues_exhausted`) and
-- lib/usage.lua (`count_usage`) before this file.
-- KEYS[1] the worker's agent hash, KEYS[2] its heartbeat key, KEYS[3] its
-- claimed list, KEYS[4] the events stream, KEYS[5] the set of workers,
-- KEYS[6] the backlog, KEYS[7] the town's usage hash, then the declared keys: the inbox of the worker's
-- agent (kind `inbox`), and what the script asks for (`need`) when its
-- claimed list holds messages: the hash of each task they name (`task`),
-- the inbox each such task is assigned to (`inbox`).
-- ARGV[1] the declared keys, ARGV[2] operation, ARGV[3] worker id, then:
--   register: agent name, pid, host, backlog ("1"/"0"), ttl ms, token
--     → {'ok', returned, requeued} or {'busy', holder token}
--   heartbeat: ttl ms, token → {'ok'}, or {'replaced', holder}, {'dead'},
--     {'gone'} when the worker must step down
--   stopped: token → {'ok'}
--   give_back: agent name → {'ok', returned}
--   recover: agent name → {'ok', returned, requeued}, or {'alive'} while
--     the worker's heartbeat lasts (for the runner, about dead workers)
-- The heartbeat key holds the worker's token (`pid@host/…`), so a second
-- process started with the id of a live worker is refused instead of
-- sharing its claimed list. register, give_back and recover answer a
-- `need` reply, having changed nothing, while a key is missing.
local agent, alive, claimed, events = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local agents, backlog_key, usage = KEYS[5], KEYS[6], KEYS[7]
local op, worker = ARGV[2], ARGV[3]
local t = redis.call('TIME')
local now = tostring(t[1] * 1000 + math.floor(t[2] / 1000))

local function event(kind, task, attempt, ...)
  redis.call('XADD', events, 'MAXLEN', '~', '100000', '*',
    'kind', kind, 'task', task, 'agent', worker, 'attempt', attempt, 'at', now, ...)
end

-- Counts in the town's usage what a dead attempt's output said while it
-- ran (keep_facts.lua, note), once, as its report would have (lib/usage.lua).
local function count_noted(key, attempt)
  local noted = redis.call('HMGET', key, 'facts', 'facts_attempt')
  if noted[1] and noted[2] == attempt then
    count_usage(usage, key, agent, attempt, noted[1])
  end
end

-- Whether a key that return_claimed (below) uses for a worker of agent
-- `name` is missing: then they are noted for the `need` reply.
local function claimed_needs(name)
  declared('inbox', name)
  for _, raw in ipairs(redis.call('LRANGE', claimed, 0, -1)) do
    local ok, msg = pcall(cjson.decode, raw)
    if ok and type(msg) == 'table' and msg.kind == 'task' and is_text(msg.task) then
      local key = declared('task', msg.task)
      if key then
        local cur = redis.call('HMGET', key, 'status', 'assigned_to')
        if cur[1] == 'assigned' and is_text(cur[2]) then
          declared('inbox', cur[2])
        end
      end
    end
  end
  return needs_keys()
end

-- Empties claimed:<worker> of messages this process will never claim:
-- each goes back to the head of the inbox (or the backlog) it came from,
-- in order, where claim.lua judges it again. A task that was started on
-- this worker id is, with `requeue`, put back to `pending` (the next
-- dispatch makes it a new attempt, so a late report of the old one is
-- rejected) and otherwise kept in claimed for recovery; one requeued too
-- often in a row (lib/requeue.lua) is failed instead.
-- Returns returned, requeued.
local function return_claimed(name, requeue)
  local inbox = declared('inbox', name)
  local kept, returned, requeued = {}, 0, 0
  -- From the tail, each to the head: the order survives.
  local raw = redis.call('RPOP', claimed)
  while raw do
    local dest = inbox
    local ok, msg = pcall(cjson.decode, raw)
    if ok and type(msg) == 'table' and msg.kind == 'task' and is_text(msg.task) then
      local key = declared('task', msg.task)
      local cur = redis.call('HMGET', key, 'status', 'worker', 'assigned_to', 'attempt')
      if cur[1] == 'running' and cur[2] == worker then
        dest = nil
        if requeue then
          count_noted(key, cur[4] or '')
        end
        if requeue and requeues_exhausted(key) then
          local reason = 'requeued ' .. MAX_REQUEUES .. ' times in a row: worker `' .. worker ..
            '` died while attempt ' .. (cur[4] or '?') .. ' ran; `tt retry` runs it again'
          redis.call('HSET', key, 'status', 'failed', 'reason', reason, 'error', reason,
            'finished', now, 'updated', now)
          event('failed', msg.task, cur[4] or '', 'status', 'failed', 'reason', reason)
        elseif requeue then
          local reason = 'requeued: worker `' .. worker .. '` stopped or died while attempt ' ..
            (cur[4] or '?') .. ' ran'
          redis.call('HSET', key, 'status', 'pending', 'reason', reason, 'updated', now)
          event('requeued', msg.task, cur[4] or '', 'status', 'pending', 'reason', reason)
          requeued = requeued + 1
        else
          table.insert(kept, 1, raw)
        end
      elseif cur[1] == 'assigned' and (cur[3] or '') == '' then
        dest = backlog_key
      elseif cur[1] == 'assigned' and is_text(cur[3]) then
        dest = declared('inbox', cur[3])
      end
    end
    if dest then
      redis.call('LPUSH', dest, raw)
      returned = returned + 1
    end
    raw = redis.call('RPOP', claimed)
  end
  if #kept > 0 then
    redis.call('RPUSH', claimed, unpack(kept))
  end
  return returned, requeued
end

if op == 'register' then
  local name, pid, host, backlog, ttl, token = ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
  local holder = redis.call('GET', alive)
  if holder and holder ~= token then
    return { 'busy', holder }
  end
  if claimed_needs(name) then
    return need_reply()
  end
  redis.call('SET', alive, token, 'PX', ttl)
  -- No live process has this id, so what an earlier one left in claimed
  -- is dead work: with this worker alive, recovery would never see it.
  local returned, requeued = return_claimed(name, true)
  -- A fresh hash: fields of an earlier process with this id are history.
  redis.call('DEL', agent)
  redis.call('HSET', agent, 'id', worker, 'name', name, 'state', 'idle', 'pid', pid,
    'host', host, 'started', now, 'heartbeat', now, 'backlog', backlog)
  redis.call('SADD', agents, worker)
  event('agent_started', '', '', 'name', name, 'host', host, 'pid', pid)
  return { 'ok', tostring(returned), tostring(requeued) }
elseif op == 'heartbeat' then
  local ttl, token = ARGV[4], ARGV[5]
  local holder = redis.call('GET', alive)
  if holder and holder ~= token then
    -- Another process registered under this id while this one was cut
    -- off: this one must step down, not share the id.
    return { 'replaced', holder }
  end
  if not holder and redis.call('HGET', agent, 'state') == 'dead' then
    -- Declared dead while cut off: its work was requeued and may already
    -- run elsewhere, so this process must not go on with it.
    return { 'dead' }
  end
  if not holder and redis.call('EXISTS', agent) == 0 then
    -- Its records are gone (a Redis restarted without its data): its task
    -- may be restored and dispatched again, so it must stop, not renew.
    return { 'gone' }
  end
  redis.call('SET', alive, token, 'PX', ttl)
  redis.call('HSET', agent, 'heartbeat', now)
  return { 'ok' }
elseif op == 'stopped' then
  local token = ARGV[4]
  if redis.call('GET', alive) == token then
    -- Gone now, not in a TTL: the runner may recover what it left at once.
    redis.call('DEL', alive)
  end
  redis.call('HSET', agent, 'state', 'stopped', 'stopped', now)
  -- It stopped its command before this: a group id left on record could
  -- only ever name someone else's processes.
  redis.call('HDEL', agent, 'command_pgid', 'command_start')
  event('agent_stopped', '', '')
  return { 'ok' }
elseif op == 'give_back' then
  -- For a worker that stops while idle: a BLMOVE cut short may have moved
  -- a message it will never claim. A task it started stays for recovery.
  if claimed_needs(ARGV[4]) then
    return need_reply()
  end
  local returned = return_claimed(ARGV[4], false)
  return { 'ok', tostring(returned) }
elseif op == 'recover' then
  if redis.call('EXISTS', alive) == 1 then
    return { 'alive' }
  end
  if claimed_needs(ARGV[4]) then
    return need_reply()
  end
  local returned, requeued = return_claimed(ARGV[4], true)
  -- A worker that stopped cleanly is not dead; one that just went silent is.
  local state = redis.call('HGET', agent, 'state')
  if state and state ~= 'stopped' and state ~= 'dead' then
    redis.call('HSET', agent, 'state', 'dead', 'died', now)
    redis.call('HDEL', agent, 'task', 'attempt')
    event('agent_dead', '', '')
  end
  -- The recoverer read the command's group before this call and stops it
  -- if it is local: the record has served.
  if state then
    redis.call('HDEL', agent, 'command_pgid', 'command_start')
  end
  return { 'ok', tostring(returned), tostring(requeued) }
end
return redis.error_reply('worker.lua: unknown operation ' .. tostring(op))
