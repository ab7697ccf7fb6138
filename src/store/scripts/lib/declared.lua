-- Keys a script can only know from what it reads — the task an inbox
-- message names, the inbox a task is assigned to, the worker a task runs
-- on — are given by the caller like every other key: a script touches only
-- keys it got in KEYS (the rule Redis documents for scripts, and what a
-- cluster routes and checks them by). ARGV[1] names them, a JSON array of
-- [kind, name] pairs, and they are the last keys of KEYS, in that order
-- (store/script.rs builds both from one list).
-- `declared(kind, name)` is the key, or nil, noting it as needed; a script
-- that lacks one answers `need_reply()` before it writes anything, and the
-- caller calls it again with those keys too. What it was told is checked
-- where it is used, so a key declared from a stale read is only unused.
-- Whether `name`, read from a message or a record, is a non-empty UTF-8
-- string, as every name tt writes is: one that is not names no key tt
-- wrote, and a `need` for it could not be read back (store/script.rs).
local function is_text(name)
  if type(name) ~= 'string' or name == '' then
    return false
  end
  local i, n = 1, #name
  while i <= n do
    local c = string.byte(name, i)
    -- Length, and the range of the second byte (no overlong forms, no
    -- surrogates, nothing past U+10FFFF).
    local len, lo, hi = 1, 0x80, 0xBF
    if c < 0x80 then
      len = 1
    elseif c >= 0xC2 and c <= 0xDF then
      len = 2
    elseif c >= 0xE0 and c <= 0xEF then
      len = 3
      if c == 0xE0 then lo = 0xA0 elseif c == 0xED then hi = 0x9F end
    elseif c >= 0xF0 and c <= 0xF4 then
      len = 4
      if c == 0xF0 then lo = 0x90 elseif c == 0xF4 then hi = 0x8F end
    else
      return false
    end
    for j = i + 1, i + len - 1 do
      local d = string.byte(name, j)
      if not d or d < lo or d > hi then
        return false
      end
      lo, hi = 0x80, 0xBF
    end
    i = i + len
  end
  return true
end

local DECLARED, NEEDED, NEEDED_SEEN = {}, {}, {}
do
  local list = cjson.decode(ARGV[1])
  local first = #KEYS - #list
  for i, pair in ipairs(list) do
    local kind, name = pair[1], pair[2]
    DECLARED[kind] = DECLARED[kind] or {}
    DECLARED[kind][name] = KEYS[first + i]
  end
end

local function declared(kind, name)
  local of_kind = DECLARED[kind]
  local key = of_kind and of_kind[name]
  if not key then
    local seen = NEEDED_SEEN[kind] or {}
    NEEDED_SEEN[kind] = seen
    if not seen[name] then
      seen[name] = true
      table.insert(NEEDED, kind)
      table.insert(NEEDED, name)
    end
  end
  return key
end

-- Whether some key was found missing.
local function needs_keys()
  return #NEEDED > 0
end

-- {'need', kind1, name1, kind2, name2, …}
local function need_reply()
  local out = { 'need' }
  for _, v in ipairs(NEEDED) do
    table.insert(out, v)
  end
  return out
end
