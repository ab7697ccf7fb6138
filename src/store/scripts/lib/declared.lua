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
