-- Adds an attempt's tokens, turns and cost (its facts, JSON) to the town's
-- `usage` hash, overall and per agent (`agent:<name>:<field>`), once per
-- attempt: `usage_attempt` on the task is the last attempt counted, so a
-- repeated report (a lost reply) is not counted twice. Used by finish.lua,
-- keep_facts.lua and worker.lua (a dead attempt's noted facts), which
-- pass the keys: `usage` the town's usage hash, `key` the task hash,
-- `agent_key` the hash of the worker that ran it.
local function count_usage(usage, key, agent_key, attempt, facts)
  if facts == '' then return end
  local ok, f = pcall(cjson.decode, facts)
  if not ok or type(f) ~= 'table' then return end
  if redis.call('EXISTS', key) == 1 then
    local counted = tonumber(redis.call('HGET', key, 'usage_attempt') or '0') or 0
    if (tonumber(attempt) or 0) <= counted then return end
    redis.call('HSET', key, 'usage_attempt', attempt)
  end
  local agent = redis.call('HGET', agent_key, 'name') or ''
  local scopes = { '' }
  if agent ~= '' then
    table.insert(scopes, 'agent:' .. agent .. ':') -- a field of `usage`, not a key
  end
  for _, scope in ipairs(scopes) do
    redis.call('HINCRBY', usage, scope .. 'attempts', 1)
    for _, name in ipairs({ 'input_tokens', 'output_tokens', 'cache_read_tokens',
      'cache_write_tokens', 'turns' }) do
      local v = f[name]
      if type(v) == 'number' and v >= 0 and v < 1e15 then
        redis.call('HINCRBY', usage, scope .. name, math.floor(v))
      end
    end
    local c = f['cost_usd']
    if type(c) == 'number' and c >= 0 and c < 1e12 then
      redis.call('HINCRBYFLOAT', usage, scope .. 'cost_usd', string.format('%.10f', c))
    end
  end
end
