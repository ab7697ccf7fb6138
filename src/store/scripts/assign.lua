-- Creates one ad-hoc task (`tt assign`), pending, after every file task.
-- Called by Store::assign.
-- ARGV[1] key prefix "tt:<town>:", ARGV[2] town name, ARGV[3] counter key,
-- ARGV[4] id ("" for the next free `adhoc-<n>`), ARGV[5] description,
-- ARGV[6] agent, ARGV[7] tags (JSON list), ARGV[8] parent, ARGV[9]
-- depends_on (JSON list), ARGV[10] priority, ARGV[11] score of
-- (priority, order 0), ARGV[12] first order of ad-hoc tasks.
-- Returns {1, id} when created, {0, id} when the id is taken.
local prefix, town, counter = ARGV[1], ARGV[2], ARGV[3]
local id = ARGV[4]
local t = redis.call('TIME')
local now = tostring(t[1] * 1000 + math.floor(t[2] / 1000))

-- Checked before the counter moves, so a refused id costs nothing.
if id ~= '' and redis.call('EXISTS', prefix .. 'task:' .. id) == 1 then
  return { 0, id }
end
-- One counter numbers both the default id and the order, so ad-hoc tasks
-- dispatch in the order they were assigned.
local n = redis.call('INCR', counter)
if id == '' then
  id = 'adhoc-' .. n
  -- Someone may have used `--id adhoc-7` by hand: skip taken numbers.
  while redis.call('EXISTS', prefix .. 'task:' .. id) == 1 do
    n = redis.call('INCR', counter)
    id = 'adhoc-' .. n
  end
end
local order = tonumber(ARGV[12]) + n
local score = tonumber(ARGV[11]) + order
local key = prefix .. 'task:' .. id
redis.call('HSET', key,
  'id', id, 'description', ARGV[5], 'agent', ARGV[6], 'tags', ARGV[7],
  'parent', ARGV[8], 'depends_on', ARGV[9], 'priority', ARGV[10],
  'order', string.format('%.0f', order), 'source', 'cli',
  'status', 'pending', 'attempt', '0', 'created', now, 'updated', now)
redis.call('ZADD', prefix .. 'tasks', string.format('%.0f', score), id)
redis.call('SADD', 'tt:towns', town)
redis.call('XADD', prefix .. 'events', 'MAXLEN', '~', '100000', '*',
  'kind', 'added', 'task', id, 'agent', ARGV[6], 'attempt', '0', 'at', now,
  'status', 'pending', 'source', 'cli')
return { 1, id }
