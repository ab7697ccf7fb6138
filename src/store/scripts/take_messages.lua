-- Takes the direct messages waiting in an agent's inbox for an agent that
-- reads them while its task runs (`tt inbox --mine`, the MCP `get_task`),
-- and leaves task entries where they are. Each one taken is recorded as
-- delivered (event `message`, as claim.lua records one a worker takes), and
-- is gone from the inbox: no worker takes it again.
-- Called by Store::take_messages.
-- KEYS[1] the agent's inbox, KEYS[2] the events stream.
-- ARGV[1] who reads (the worker id, else the agent), ARGV[2] the task it
-- is read in ("" for none).
-- Returns from1, body1, from2, body2, …, head first.
local inbox, events = KEYS[1], KEYS[2]
local reader, task = ARGV[1], ARGV[2]
local t = redis.call('TIME')
local now = tostring(t[1] * 1000 + math.floor(t[2] / 1000))
local out = {}
for _, raw in ipairs(redis.call('LRANGE', inbox, 0, -1)) do
  local ok, msg = pcall(cjson.decode, raw)
  if ok and type(msg) == 'table' and msg.kind == 'message'
      and type(msg.from) == 'string' and type(msg.body) == 'string' then
    redis.call('LREM', inbox, 1, raw)
    redis.call('XADD', events, 'MAXLEN', '~', '100000', '*',
      'kind', 'message', 'task', task, 'agent', reader, 'attempt', '', 'at', now,
      'from', msg.from, 'body', msg.body)
    table.insert(out, msg.from)
    table.insert(out, msg.body)
  end
end
return out
