-- Answers a task's open question (`tt answer`), or withdraws it (the
-- `tt ask` that asked gave up). Called by Store::answer and Store::withdraw.
-- KEYS[1] the task hash, KEYS[2] the events stream, KEYS[3] the task's
-- answer list.
-- ARGV[1] task id, ARGV[2] "answer" | "withdraw", ARGV[3] the answer (or
-- why it was withdrawn), ARGV[4] who answers, ARGV[5] the question id a
-- withdrawal is for ("" when answering: the open one).
-- The time the question waited is added to the attempt's `waited_ms`.
-- Returns {'answered', question} | {'withdrawn'} | {'no_question', status}.
local task, events, answers = KEYS[1], KEYS[2], KEYS[3]
local id, mode, text, by, for_qid = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local t = redis.call('TIME')
local now_n = t[1] * 1000 + math.floor(t[2] / 1000)
local now = tostring(now_n)
local cur = redis.call('HMGET', task, 'status', 'question_id', 'question', 'question_at',
  'attempt', 'worker')
local status, qid, question, asked = cur[1], cur[2], cur[3], tonumber(cur[4]) or now_n
if not qid or (for_qid ~= '' and for_qid ~= qid) then
  return { 'no_question', status or '' }
end
if mode == 'answer' and status ~= 'running' then
  return { 'no_question', status or '' }
end
redis.call('HDEL', task, 'question', 'question_id', 'question_choices', 'question_at')
redis.call('HINCRBY', task, 'waited_ms', math.max(0, now_n - asked))
if mode == 'withdraw' then
  redis.call('XADD', events, 'MAXLEN', '~', '100000', '*',
    'kind', 'unasked', 'task', id, 'agent', cur[6] or '', 'attempt', cur[5] or '0', 'at', now,
    'question', question or '', 'reason', text)
  return { 'withdrawn' }
end
redis.call('RPUSH', answers, cjson.encode({ question = qid, answer = text }))
-- An answer nobody takes (the asker died) must not stay for ever.
redis.call('EXPIRE', answers, 86400)
redis.call('XADD', events, 'MAXLEN', '~', '100000', '*',
  'kind', 'answered', 'task', id, 'agent', cur[6] or '', 'attempt', cur[5] or '0', 'at', now,
  'question', question or '', 'answer', text, 'from', by)
return { 'answered', question or '' }
