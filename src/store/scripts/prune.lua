-- Forgets workers that are gone (`tt prune`): state `stopped`, or no
-- heartbeat key. A worker with a live heartbeat is never touched, nor one
-- whose claimed list still holds work (the runner requeues that first).
-- Called by Store::prune.
-- ARGV[1] key prefix.
-- Returns one entry per worker considered: {worker, agent name, state,
-- outcome, count}; outcome "pruned" (count = inbox messages dropped with
-- it, when it was the agent's last worker) or "kept" (count = claimed
-- entries that keep it).
local prefix = ARGV[1]
local t = redis.call('TIME')
local now = tostring(t[1] * 1000 + math.floor(t[2] / 1000))
local agents_key = prefix .. 'agents'

local function name_of(w)
  local n = redis.call('HGET', prefix .. 'agent:' .. w, 'name')
  if n and n ~= '' then return n end
  -- Workers are `<agent>-<n>` (or `<agent>-<pid>`).
  return string.match(w, '^(.+)%-%d+$') or w
end

local out = {}
local gone_names = {}
for _, w in ipairs(redis.call('SMEMBERS', agents_key)) do
  local key = prefix .. 'agent:' .. w
  local state = redis.call('HGET', key, 'state') or ''
  local alive = redis.call('EXISTS', prefix .. 'alive:' .. w) == 1
  if state == 'stopped' or not alive then
    local name = name_of(w)
    local shown = state
    if state ~= 'stopped' then shown = 'dead' end
    local claimed = redis.call('LLEN', prefix .. 'claimed:' .. w)
    if claimed > 0 then
      out[#out + 1] = { w, name, shown, 'kept', claimed }
    else
      redis.call('DEL', key, prefix .. 'alive:' .. w, prefix .. 'control:' .. w)
      redis.call('SREM', agents_key, w)
      redis.call('XADD', prefix .. 'events', 'MAXLEN', '~', '100000', '*',
        'kind', 'pruned', 'task', '', 'agent', w, 'attempt', '', 'at', now,
        'state', shown)
      out[#out + 1] = { w, name, shown, 'pruned', 0 }
      gone_names[name] = #out
    end
  end
end
-- An inbox is dropped with the last worker of its agent, unless it still
-- holds tasks: those are assigned, and a future worker must find them.
for name, at in pairs(gone_names) do
  local others = false
  for _, w in ipairs(redis.call('SMEMBERS', agents_key)) do
    if name_of(w) == name then others = true break end
  end
  -- `supervisor` is the runner's own inbox (store::keys::SUPERVISOR).
  if not others and name ~= 'supervisor' then
    local inbox = prefix .. 'inbox:' .. name
    local has_task = false
    local items = redis.call('LRANGE', inbox, 0, -1)
    for _, raw in ipairs(items) do
      local ok, m = pcall(cjson.decode, raw)
      if ok and type(m) == 'table' and m.kind == 'task' then has_task = true break end
    end
    if not has_task and #items > 0 then
      redis.call('DEL', inbox)
      out[at][5] = #items
    end
  end
end
return out
