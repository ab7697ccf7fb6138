-- Records a progress note on a running attempt (`tt progress`). Called by
-- Store::progress, after lib/running.lua.
-- KEYS[1] the task hash, KEYS[2] the events stream.
-- ARGV[1] task id, ARGV[2] attempt, ARGV[3] the note.
-- Returns {'ok'} | {'not_running', reason}.
local task, events = KEYS[1], KEYS[2]
local id, attempt, text = ARGV[1], ARGV[2], ARGV[3]
local t = redis.call('TIME')
local now = tostring(t[1] * 1000 + math.floor(t[2] / 1000))
local cur, why = running_attempt(task, id, attempt)
if not cur then
  return { 'not_running', why }
end
redis.call('HSET', task, 'progress', text, 'progress_at', now, 'progress_attempt', attempt)
redis.call('XADD', events, 'MAXLEN', '~', '100000', '*',
  'kind', 'progress', 'task', id, 'agent', cur[3] or '', 'attempt', attempt, 'at', now,
  'progress', text)
return { 'ok' }
