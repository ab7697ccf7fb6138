-- Debug builds only (store/script.rs puts this before every script): a
-- script fails as soon as it touches a key it did not get in KEYS, or gets
-- no key at all (a cluster could not route it). Redis itself does not
-- check this: a standalone server runs any key, and a cluster only refuses
-- a key of another slot. `COMMAND GETKEYS` says which arguments of a call
-- are keys, as Redis itself reads them; this local `redis` stands in for
-- the global one in the rest of the script.
local redis = (function(real)
  if #KEYS == 0 then
    error('a script with no KEYS cannot be routed: pass the keys it touches', 0)
  end
  local given = {}
  for _, k in ipairs(KEYS) do
    given[k] = true
  end
  local function check(cmd, ...)
    local keys = real.pcall('COMMAND', 'GETKEYS', cmd, ...)
    -- An error here is a command without keys (TIME), or a call that
    -- fails anyway on its own.
    if type(keys) == 'table' and not keys.err then
      for _, k in ipairs(keys) do
        if not given[k] then
          error('undeclared key `' .. k .. '` in ' .. tostring(cmd) ..
            ': a script must get every key it touches in KEYS', 0)
        end
      end
    end
  end
  return setmetatable({
    call = function(cmd, ...)
      check(cmd, ...)
      return real.call(cmd, ...)
    end,
    pcall = function(cmd, ...)
      check(cmd, ...)
      return real.pcall(cmd, ...)
    end,
  }, { __index = real })
end)(redis)
