-- Records a question on a running attempt (`tt ask`). Called by Store::ask.
-- KEYS[1] the task hash, KEYS[2] the events stream, KEYS[3] the task's
-- answer list.
-- ARGV[1] task id, ARGV[2] attempt, ARGV[3] question id, ARGV[4] the
-- question, ARGV[5] its choices (a JSON array, "[]" for free text).
-- Only the attempt that is running may ask; an earlier answer still in the
-- list is for an earlier question and goes.
-- Time spent waiting for answers is kept per attempt (`waited_ms` of
-- attempt `waited_attempt`), for the worker's timeout.
-- Returns {'asked', at} | {'not_running', reason}.
local task, events, answers = KEYS[1], KEYS[2], KEYS[3]
local id, attempt, qid, text, choices = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local t = redis.call('TIME')
local now = tostring(t[1] * 1000 + math.floor(t[2] / 1000))
local cur, why = running_attempt(task, id, attempt, 'waited_attempt')
if not cur then
  return { 'not_running', why }
end
redis.call('DEL', answers)
if cur[4] ~= attempt then
  redis.call('HSET', task, 'waited_ms', '0', 'waited_attempt', attempt)
end
redis.call('HSET', task, 'question', text, 'question_id', qid, 'question_choices', choices,
  'question_at', now)
redis.call('XADD', events, 'MAXLEN', '~', '100000', '*',
  'kind', 'asked', 'task', id, 'agent', cur[3] or '', 'attempt', attempt, 'at', now,
  'question', text, 'choices', choices)
return { 'asked', now }
