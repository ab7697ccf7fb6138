-- Whether attempt `attempt` of task `id` (hash `key`) is the one running:
-- what a command speaking from inside a task (ask.lua, progress.lua) may
-- change. Returns the task's {status, attempt, worker, …fields} and nil,
-- or nil and why not.
local function running_attempt(key, id, attempt, ...)
  local cur = redis.call('HMGET', key, 'status', 'attempt', 'worker', ...)
  if cur[1] ~= 'running' then
    return nil, 'task `' .. id .. '` is ' .. (cur[1] or 'not in this town')
  end
  if cur[2] ~= attempt then
    return nil, 'attempt ' .. attempt .. ' of `' .. id .. '` is over; the task is at attempt ' .. (cur[2] or '0')
  end
  return cur, nil
end
