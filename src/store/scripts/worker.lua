-- A worker's own records: its agent hash, its heartbeat, the set of
-- workers. Called by Store::register_worker, heartbeat and worker_stopped.
-- ARGV[1] key prefix, ARGV[2] operation, ARGV[3] worker id, then:
--   register: agent name, pid, host, backlog ("1"/"0"), ttl ms, token
--     → {'ok', leftover claimed count} or {'busy', holder token}
--   heartbeat: ttl ms, token → {'ok'}
--   stopped: token → {'ok'}
-- The heartbeat key holds the worker's token (`pid@host/…`), so a second
-- process started with the id of a live worker is refused instead of
-- sharing its claimed list.
local prefix, op, worker = ARGV[1], ARGV[2], ARGV[3]
local t = redis.call('TIME')
local now = tostring(t[1] * 1000 + math.floor(t[2] / 1000))
local alive = prefix .. 'alive:' .. worker
local agent = prefix .. 'agent:' .. worker

local function event(kind, ...)
  redis.call('XADD', prefix .. 'events', 'MAXLEN', '~', '100000', '*',
    'kind', kind, 'task', '', 'agent', worker, 'attempt', '', 'at', now, ...)
end

if op == 'register' then
  local name, pid, host, backlog, ttl, token = ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
  local holder = redis.call('GET', alive)
  if holder and holder ~= token then
    return { 'busy', holder }
  end
  redis.call('SET', alive, token, 'PX', ttl)
  -- A fresh hash: fields of an earlier process with this id are history.
  redis.call('DEL', agent)
  redis.call('HSET', agent, 'id', worker, 'name', name, 'state', 'idle', 'pid', pid,
    'host', host, 'started', now, 'heartbeat', now, 'backlog', backlog)
  redis.call('SADD', prefix .. 'agents', worker)
  event('agent_started', 'name', name, 'host', host, 'pid', pid)
  return { 'ok', tostring(redis.call('LLEN', prefix .. 'claimed:' .. worker)) }
elseif op == 'heartbeat' then
  local ttl, token = ARGV[4], ARGV[5]
  redis.call('SET', alive, token, 'PX', ttl)
  redis.call('HSET', agent, 'heartbeat', now)
  -- Declared dead while cut off (the runner requeued its work): it is
  -- back, with whatever it runs now.
  if redis.call('HGET', agent, 'state') == 'dead' then
    local busy = redis.call('HEXISTS', agent, 'task') == 1
    redis.call('HSET', agent, 'state', busy and 'working' or 'idle')
  end
  return { 'ok' }
elseif op == 'stopped' then
  local token = ARGV[4]
  if redis.call('GET', alive) == token then
    -- Gone now, not in a TTL: the runner may recover what it left at once.
    redis.call('DEL', alive)
  end
  redis.call('HSET', agent, 'state', 'stopped', 'stopped', now)
  event('agent_stopped')
  return { 'ok' }
end
return redis.error_reply('worker.lua: unknown operation ' .. tostring(op))
