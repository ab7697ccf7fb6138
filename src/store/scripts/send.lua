-- Puts a direct message into an agent's inbox and records it.
-- Called by Store::send.
-- KEYS[1] the agent's inbox, KEYS[2] the events stream.
-- ARGV[1] agent name, ARGV[2] message JSON, ARGV[3] "1" for urgent (head
-- of the inbox), ARGV[4] sender, ARGV[5] body.
-- Returns the inbox length after the push.
local inbox, events = KEYS[1], KEYS[2]
local agent, msg, urgent = ARGV[1], ARGV[2], ARGV[3] == '1'
local t = redis.call('TIME')
local now = tostring(t[1] * 1000 + math.floor(t[2] / 1000))
local len
if urgent then
  len = redis.call('LPUSH', inbox, msg)
else
  len = redis.call('RPUSH', inbox, msg)
end
redis.call('XADD', events, 'MAXLEN', '~', '100000', '*',
  'kind', 'message', 'task', '', 'agent', agent, 'attempt', '', 'at', now,
  'from', ARGV[4], 'body', ARGV[5], 'urgent', urgent and '1' or '0')
return len
