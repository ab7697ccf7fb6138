-- Puts a direct message into an agent's inbox and records it.
-- Called by Store::send.
-- ARGV[1] key prefix, ARGV[2] agent name, ARGV[3] message JSON,
-- ARGV[4] "1" for urgent (head of the inbox), ARGV[5] sender, ARGV[6] body.
-- Returns the inbox length after the push.
local prefix, agent, msg, urgent = ARGV[1], ARGV[2], ARGV[3], ARGV[4] == '1'
local t = redis.call('TIME')
local now = tostring(t[1] * 1000 + math.floor(t[2] / 1000))
local inbox = prefix .. 'inbox:' .. agent
local len
if urgent then
  len = redis.call('LPUSH', inbox, msg)
else
  len = redis.call('RPUSH', inbox, msg)
end
redis.call('XADD', prefix .. 'events', 'MAXLEN', '~', '100000', '*',
  'kind', 'message', 'task', '', 'agent', agent, 'attempt', '', 'at', now,
  'from', ARGV[5], 'body', ARGV[6], 'urgent', urgent and '1' or '0')
return len
