-- Applies one chunk of a plan diff atomically. Called by Store::apply_sync,
-- after lib/declared.lua, every chunk in one MULTI/EXEC.
-- KEYS[1] the town's meta hash, KEYS[2] the sorted set of tasks, KEYS[3]
-- the fingerprints hash, KEYS[4] the events stream, KEYS[5] the set of
-- workers, then the hash of each task of the chunk (upserts, then
-- removals, in ARGV's order), then the declared keys: the control list of
-- every worker in the set (kind `control`), where a running task the file
-- finishes or removes is told to stop.
-- ARGV[1] the declared keys, ARGV[2] plan fingerprint to record ("" for
-- all but the last chunk), ARGV[3] "1" to record file statuses as seen
-- without applying them, ARGV[4] number of upserts, ARGV[5] number of
-- removals, ARGV[6] the plan fingerprint the caller expects Redis to hold
-- ("" = no check), ARGV[7] the origin of the plan (host and path of its
-- file, "" = no check), ARGV[8] "1" to take the town over from another
-- origin, ARGV[9] "1" in the first chunk of the sync, ARGV[10] "1" for a
-- cold sync (the caller found the town without tasks: nothing is read per
-- task), then 15 fields per upsert (id, fingerprint, description, agent,
-- tags, parent, depends_on, priority, order, file status, score, retries,
-- timeout ms, on_child_failure, budget JSON), then the removed ids.
-- Returns {added, changed, removed, refused, held, skipped}: refused = 1
-- means the stored plan fingerprint was not the expected one (someone else
-- synced meanwhile) or that a cold sync found tasks in the town (the
-- caller syncs again, reading them), 2 that the town's plan comes from another origin
-- (`held`), 3 that the set of workers holds one whose control list was not
-- declared (one registered since the caller read the set); either way
-- nothing was written, and every chunk of the transaction answers the
-- same. `skipped` lists the tasks whose key holds no hash (edited by
-- hand): they are left alone, and their fingerprint is not recorded, so
-- the next push tries them again.
-- The set of towns is not written here: it is not a key of the town
-- (Store::apply_sync adds the town to it).
local meta_key, tasks_key, fps_key, events_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local agents_key = KEYS[5]
local plan_fp = ARGV[2]
local adopt = ARGV[3] == '1'
local nu, nr = tonumber(ARGV[4]), tonumber(ARGV[5])
local expected, origin, take_over = ARGV[6], ARGV[7], ARGV[8] == '1'
local first, last, cold = ARGV[9] == '1', plan_fp ~= '', ARGV[10] == '1'
-- The chunks of one sync run in one MULTI/EXEC, one after the other; they
-- pass on what only the first checks and what the last reports in
-- scratch fields of meta that nobody else sees (the first chunk clears
-- what a failed transaction may have left).
if first and not last then
  redis.call('HDEL', meta_key, 'sync_cold', 'sync_added', 'sync_changed')
end
local meta = redis.call('HMGET', meta_key, 'plan_fp', 'origin', 'sync_cold', 'sync_added', 'sync_changed')
if expected ~= '' and meta[1] ~= expected then
  return { 0, 0, 0, 1, '', {} }
end
local held = meta[2]
if origin ~= '' and held and held ~= origin and not take_over then
  return { 0, 0, 0, 2, held, {} }
end
for _, w in ipairs(redis.call('SMEMBERS', agents_key)) do
  if not declared('control', w) then
    return { 0, 0, 0, 3, '', {} }
  end
end
if cold then
  -- Every later chunk writes only if the first found the town empty.
  if first then
    if redis.call('ZCARD', tasks_key) ~= 0 then return { 0, 0, 0, 1, '', {} } end
    if not last then redis.call('HSET', meta_key, 'sync_cold', '1') end
  elseif meta[3] ~= '1' then
    return { 0, 0, 0, 1, '', {} }
  end
end
local t = redis.call('TIME')
local now = tostring(t[1] * 1000 + math.floor(t[2] / 1000))

local final = { completed = true, failed = true, cancelled = true }
local function applied(s)
  if s == 'assigned' or s == 'running' then return 'pending' end
  return s
end
-- Tells a worker to stop an attempt. One that is not in the set of
-- workers has no control key declared, and no process that reads it: a
-- worker registers before it claims, and is pruned only once its claimed
-- list is empty.
local function stop(worker, message)
  local control = declared('control', worker)
  if control then
    redis.call('LPUSH', control, message)
  end
end
local function event(kind, id, ...)
  redis.call('XADD', events_key, 'MAXLEN', '~', '100000', '*',
    'kind', kind, 'task', id, 'at', now, ...)
end

local added, changed, removed = 0, 0, 0
local skipped = {}
-- Sorted-set entries and fingerprints of the chunk, written by one ZADD and
-- one HSET (at most 2 × UPSERTS_PER_CALL values: within what unpack takes).
local scores, fps = {}, {}
local i = 11
for j = 1, nu do
  local id, fp, desc, agent, tags, parent, deps, prio, order, fstatus, score =
    ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5],
    ARGV[i + 6], ARGV[i + 7], ARGV[i + 8], ARGV[i + 9], ARGV[i + 10]
  local retries, timeout, policy = ARGV[i + 11], ARGV[i + 12], ARGV[i + 13]
  local budget = ARGV[i + 14]
  i = i + 15
  -- `break` leaves this one-pass loop: the task is skipped.
  repeat
    local key = KEYS[5 + j]
    -- A cold sync knows there is no record to read.
    local cur = cold and {} or redis.pcall('HMGET', key, 'status', 'file_status', 'removed', 'id', 'agent', 'worker', 'attempt')
    if cur.err then
      table.insert(skipped, id)
      break
    end
    if not cur[4] then
      local status = 'pending'
      if fstatus ~= '' then status = applied(fstatus) end
      -- The fields of `def` below, spelt out: most tasks of a large sync
      -- are new, and a table per task costs more than the call.
      -- pcall: a key made by hand between the caller's check and now.
      local ok = redis.pcall('HSET', key, 'status', status, 'attempt', '0', 'created', now,
        'id', id, 'description', desc, 'agent', agent, 'tags', tags,
        'parent', parent, 'depends_on', deps, 'priority', prio, 'order', order,
        'file_status', fstatus, 'fingerprint', fp, 'source', 'file', 'updated', now,
        'retries', retries, 'timeout', timeout, 'on_child_failure', policy, 'budget', budget)
      if type(ok) == 'table' and ok.err then
        table.insert(skipped, id)
        break
      end
      added = added + 1
    else
      local def = { 'id', id, 'description', desc, 'agent', agent, 'tags', tags,
        'parent', parent, 'depends_on', deps, 'priority', prio, 'order', order,
        'file_status', fstatus, 'fingerprint', fp, 'source', 'file', 'updated', now,
        'retries', retries, 'timeout', timeout, 'on_child_failure', policy, 'budget', budget }
      local old, status, reason = cur[1] or 'pending', cur[1] or 'pending', nil
      if cur[3] == '1' then
        redis.call('HDEL', key, 'removed')
        if status == 'cancelled' then status, reason = 'pending', 'back in the file' end
      end
      if not adopt and fstatus ~= '' and fstatus ~= (cur[2] or '') then
        local want = applied(fstatus)
        if want == 'pending' then
          if final[status] then status, reason = 'pending', 'file set status = pending' end
        elseif want ~= status and (not final[status] or want == 'completed') then
          status, reason = want, 'file set status = ' .. want
        end
      end
      if status == 'assigned' and (cur[5] or '') ~= agent then
        -- Queued for the old agent: dispatch again to the new one. The old
        -- inbox message is dropped at claim (assigned_to no longer matches).
        status, reason = 'pending', 'agent changed to ' .. (agent ~= '' and agent or 'backlog')
      end
      if old == 'running' and status ~= 'running' and cur[6] then
        -- The file finished or cancelled a task that runs: stop its process
        -- (dispatch waits for that before running it again).
        stop(cur[6],
          cjson.encode({ kind = 'stop', task = id, attempt = tonumber(cur[7]) or 0 }))
      end
      redis.call('HSET', key, 'status', status, unpack(def))
      if reason then
        redis.call('HSET', key, 'reason', reason)
      end
      changed = changed + 1
      if status ~= old then
        event('changed', id, 'from', old, 'status', status, 'reason', reason or '')
      else
        event('changed', id, 'status', status)
      end
    end
    scores[#scores + 1] = score
    scores[#scores + 1] = id
    fps[#fps + 1] = id
    fps[#fps + 1] = fp
  until true
end
if #scores > 0 then
  redis.call('ZADD', tasks_key, unpack(scores))
  redis.call('HSET', fps_key, unpack(fps))
end
for j = 1, nr do
  local id = ARGV[i]
  i = i + 1
  repeat
    local key = KEYS[5 + nu + j]
    local cur = redis.pcall('HMGET', key, 'status', 'worker', 'attempt')
    if cur.err then
      table.insert(skipped, id)
      break
    end
    local status = cur[1]
    if status then
      if status == 'running' and cur[2] then
        -- Stop the process; its finish report will find the task cancelled.
        stop(cur[2],
          cjson.encode({ kind = 'stop', task = id, attempt = tonumber(cur[3]) or 0 }))
      end
      local fields = { 'removed', '1', 'updated', now }
      if not final[status] then
        table.insert(fields, 'status'); table.insert(fields, 'cancelled')
        table.insert(fields, 'reason'); table.insert(fields, 'removed from the file')
      end
      redis.call('HSET', key, unpack(fields))
      removed = removed + 1
      event('removed', id, 'from', status)
    end
    redis.call('HDEL', fps_key, id)
  until true
end
if last then
  redis.call('HSET', meta_key, 'plan_fp', plan_fp, 'synced', now)
  if origin ~= '' and held ~= origin then
    redis.call('HSET', meta_key, 'origin', origin)
    if held then
      event('taken_over', '', 'from', held, 'by', origin)
    end
  end
  -- One event for what the whole sync wrote: added tasks have no event of
  -- their own (readers re-read the town), changed and removed ones do.
  local all_added, all_changed = added, changed
  if not first then
    all_added = added + (tonumber(meta[4]) or 0)
    all_changed = changed + (tonumber(meta[5]) or 0)
    redis.call('HDEL', meta_key, 'sync_cold', 'sync_added', 'sync_changed')
  end
  if all_added + all_changed + removed > 0 then
    event('synced', '', 'added', all_added, 'changed', all_changed, 'removed', removed,
      'plan_fp', plan_fp)
  end
else
  if added > 0 then redis.call('HINCRBY', meta_key, 'sync_added', added) end
  if changed > 0 then redis.call('HINCRBY', meta_key, 'sync_changed', changed) end
end
return { added, changed, removed, 0, '', skipped }
