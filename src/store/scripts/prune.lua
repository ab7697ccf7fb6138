-- Forgets workers that are gone (`tt prune`): state `stopped`, or no
-- heartbeat key. A worker with a live heartbeat is never touched, nor one
-- whose claimed list still holds work (the runner requeues that first).
-- Called by Store::prune, after lib/declared.lua.
-- KEYS[1] the set of workers, KEYS[2] the events stream, then the
-- declared keys, which the script asks for (`need`) as it reads: for each
-- worker in the set its agent hash, heartbeat key, claimed and control
-- lists (kinds `agent`, `alive`, `claimed`, `control`), and the inbox
-- (`inbox`) of each agent that loses its last worker.
-- ARGV[1] the declared keys.
-- Returns one entry per worker considered: {worker, agent name, state,
-- outcome, count}; outcome "pruned" (count = inbox messages dropped with
-- it, when it was the agent's last worker) or "kept" (count = claimed
-- entries that keep it). Or a `need` reply, having changed nothing.
local agents_key, events = KEYS[1], KEYS[2]
local t = redis.call('TIME')
local now = tostring(t[1] * 1000 + math.floor(t[2] / 1000))

-- A worker's keys; nil when one is not declared.
local function keys_of(w)
  local k = { agent = declared('agent', w), alive = declared('alive', w),
    claimed = declared('claimed', w), control = declared('control', w) }
  if k.agent and k.alive and k.claimed and k.control then
    return k
  end
  return nil
end

local function name_of(k, w)
  local n = redis.call('HGET', k.agent, 'name')
  if n and n ~= '' then return n end
  -- Workers are `<agent>-<n>` (or `<agent>-<pid>`).
  return string.match(w, '^(.+)%-%d+$') or w
end

-- What happens to each worker, decided before anything changes.
local plan, all_keys = {}, true
for _, w in ipairs(redis.call('SMEMBERS', agents_key)) do
  local k = keys_of(w)
  if not k then
    all_keys = false
  else
    local state = redis.call('HGET', k.agent, 'state') or ''
    local alive = redis.call('EXISTS', k.alive) == 1
    local item = { w = w, k = k, name = name_of(k, w) }
    if state == 'stopped' or not alive then
      item.shown = state == 'stopped' and state or 'dead'
      item.claimed = redis.call('LLEN', k.claimed)
      item.prune = item.claimed == 0
    end
    plan[#plan + 1] = item
  end
end
if not all_keys then
  return need_reply()
end
-- An inbox is dropped with the last worker of its agent, unless it still
-- holds tasks: those are assigned, and a future worker must find them.
local staying, gone_names = {}, {}
for _, item in ipairs(plan) do
  if item.prune then
    gone_names[item.name] = true
  else
    staying[item.name] = true
  end
end
local inboxes = {}
for name in pairs(gone_names) do
  -- `supervisor` is the runner's own inbox (store::keys::SUPERVISOR).
  if not staying[name] and name ~= 'supervisor' then
    inboxes[name] = declared('inbox', name)
  end
end
if needs_keys() then
  return need_reply()
end

local out, row_of = {}, {}
for _, item in ipairs(plan) do
  local w, k = item.w, item.k
  if item.prune then
    redis.call('DEL', k.agent, k.alive, k.control)
    redis.call('SREM', agents_key, w)
    redis.call('XADD', events, 'MAXLEN', '~', '100000', '*',
      'kind', 'pruned', 'task', '', 'agent', w, 'attempt', '', 'at', now,
      'state', item.shown)
    out[#out + 1] = { w, item.name, item.shown, 'pruned', 0 }
    row_of[item.name] = #out
  elseif item.shown then
    out[#out + 1] = { w, item.name, item.shown, 'kept', item.claimed }
  end
end
for name, inbox in pairs(inboxes) do
  local has_task = false
  local items = redis.call('LRANGE', inbox, 0, -1)
  for _, raw in ipairs(items) do
    local ok, m = pcall(cjson.decode, raw)
    if ok and type(m) == 'table' and m.kind == 'task' then has_task = true break end
  end
  if not has_task and #items > 0 then
    redis.call('DEL', inbox)
    out[row_of[name]][5] = #items
  end
end
return out
