-- Creates one ad-hoc task (`tt assign`), pending, after every file task.
-- Called by Store::assign, after lib/declared.lua: the hash of the task
-- to create is declared (kind `task`), for a default id too, which this
-- script asks for (`need`) once it knows the next free number.
-- KEYS[1] the counter, KEYS[2] the sorted set of tasks, KEYS[3] the events
-- stream, then the declared keys.
-- ARGV[1] the declared keys, ARGV[2] id ("" for the next free
-- `adhoc-<n>`), ARGV[3] description, ARGV[4] agent, ARGV[5] tags (JSON
-- list), ARGV[6] parent, ARGV[7] depends_on (JSON list), ARGV[8] priority,
-- ARGV[9] score of (priority, order 0), ARGV[10] first order of ad-hoc
-- tasks.
-- Returns {1, id} when created, {0, id} when the id is taken, or a `need`
-- reply.
local counter, tasks, events = KEYS[1], KEYS[2], KEYS[3]
local id = ARGV[2]
local t = redis.call('TIME')
local now = tostring(t[1] * 1000 + math.floor(t[2] / 1000))

local n, key
if id ~= '' then
  key = declared('task', id)
  if not key then
    return need_reply()
  end
  -- Checked before the counter moves, so a refused id costs nothing.
  if redis.call('EXISTS', key) == 1 then
    return { 0, id }
  end
  -- One counter numbers both the default id and the order, so ad-hoc
  -- tasks dispatch in the order they were assigned.
  n = redis.call('INCR', counter)
else
  local raw = redis.call('GET', counter)
  n = (tonumber(raw) or 0) + 1
  if raw and not tonumber(raw) then
    return redis.error_reply('`' .. counter .. '` holds `' .. raw ..
      '`, not a number: fix it with `redis-cli SET`, or give the task an `--id`')
  end
  -- Someone may have used `--id adhoc-7` by hand: skip taken numbers.
  while true do
    id = 'adhoc-' .. n
    key = declared('task', id)
    if not key then
      return need_reply()
    end
    if redis.call('EXISTS', key) == 0 then
      break
    end
    n = n + 1
  end
  redis.call('SET', counter, n)
end
local order = tonumber(ARGV[10]) + n
local score = tonumber(ARGV[9]) + order
redis.call('HSET', key,
  'id', id, 'description', ARGV[3], 'agent', ARGV[4], 'tags', ARGV[5],
  'parent', ARGV[6], 'depends_on', ARGV[7], 'priority', ARGV[8],
  'order', string.format('%.0f', order), 'source', 'cli',
  'status', 'pending', 'attempt', '0', 'created', now, 'updated', now)
redis.call('ZADD', tasks, string.format('%.0f', score), id)
redis.call('XADD', events, 'MAXLEN', '~', '100000', '*',
  'kind', 'added', 'task', id, 'agent', ARGV[4], 'attempt', '0', 'at', now,
  'status', 'pending', 'source', 'cli')
return { 1, id }
