//! How the store runs its Lua scripts (`scripts/*.lua`): each one gets
//! every key it touches in `KEYS` — the rule Redis documents for scripts,
//! and what a cluster routes a script by and checks it against — and
//! builds no key name itself. Keys a script can only know from what it
//! reads (the task an inbox message names, the worker a task runs on) are
//! *declared*: the caller names them by [`Kind`] and name, the script finds
//! them by the same (`scripts/lib/declared.lua`), and one it lacks makes it
//! answer `need` before it changes anything; [`Store::run_declared`] then
//! calls it again with those keys too. The script checks what it reads
//! itself, so a key declared from a stale read is merely unused.
//!
//! Debug builds put `scripts/lib/key_check.lua` before every script, which
//! fails a script that touches a key it did not get: the whole test suite
//! runs with that check, which Redis has no setting for.

use std::collections::HashSet;

use redis::{Script, ScriptInvocation, Value};

use super::{Keys, Store, StoreError};

/// A script from its source, with the key check before it in debug builds.
/// Every script of the store is built by this.
pub fn script(source: &str) -> Script {
    if cfg!(debug_assertions) {
        Script::new(&format!(
            "{}\n{source}",
            include_str!("scripts/lib/key_check.lua")
        ))
    } else {
        Script::new(source)
    }
}

/// What a declared key is, as scripts name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Kind {
    /// `task:<id>`
    Task,
    /// `inbox:<agent>`
    Inbox,
    /// `agent:<worker>`
    Agent,
    /// `alive:<worker>`
    Alive,
    /// `claimed:<worker>`
    Claimed,
    /// `control:<worker>`
    Control,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Task => "task",
            Kind::Inbox => "inbox",
            Kind::Agent => "agent",
            Kind::Alive => "alive",
            Kind::Claimed => "claimed",
            Kind::Control => "control",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        [
            Kind::Task,
            Kind::Inbox,
            Kind::Agent,
            Kind::Alive,
            Kind::Claimed,
            Kind::Control,
        ]
        .into_iter()
        .find(|k| k.name() == name)
    }

    fn key(self, keys: &Keys, name: &str) -> String {
        match self {
            Kind::Task => keys.task(name),
            Kind::Inbox => keys.inbox(name),
            Kind::Agent => keys.agent(name),
            Kind::Alive => keys.alive(name),
            Kind::Claimed => keys.claimed(name),
            Kind::Control => keys.control(name),
        }
    }
}

/// The keys a call declares, each once, in the order first declared.
#[derive(Debug, Clone, Default)]
pub(super) struct Declared {
    items: Vec<(Kind, String)>,
    seen: HashSet<(Kind, String)>,
}

impl Declared {
    pub(super) fn new() -> Self {
        Self::default()
    }

    pub(super) fn add(&mut self, kind: Kind, name: &str) -> &mut Self {
        let item = (kind, name.to_string());
        if self.seen.insert(item.clone()) {
            self.items.push(item);
        }
        self
    }

    /// Puts the declared keys last in `KEYS` and their names first in
    /// `ARGV`, as `lib/declared.lua` reads them; the invocation's own keys
    /// must be added before and its own arguments after.
    pub(super) fn apply(&self, keys: &Keys, inv: &mut ScriptInvocation<'_>) {
        for key in self.keys(keys) {
            inv.key(key);
        }
        inv.arg(self.names());
    }

    /// The declared keys, in order.
    pub(super) fn keys<'a>(&'a self, keys: &'a Keys) -> impl Iterator<Item = String> + 'a {
        self.items.iter().map(|(kind, name)| kind.key(keys, name))
    }

    pub(super) fn len(&self) -> usize {
        self.items.len()
    }

    /// `ARGV[1]` of a script that reads lib/declared.lua: the JSON array
    /// of [kind, name] pairs.
    pub(super) fn names(&self) -> String {
        let names: Vec<[&str; 2]> = self
            .items
            .iter()
            .map(|(kind, name)| [kind.name(), name.as_str()])
            .collect();
        serde_json::to_string(&names).unwrap_or_else(|_| "[]".into())
    }

    /// The keys a `need` reply asks for, declared; `Ok(false)` when `reply`
    /// is not one. `Err` names what the script asked for that tt does not
    /// know, or that was declared already (the script would ask for ever).
    pub(super) fn absorb(&mut self, reply: &Value) -> Result<bool, String> {
        let Some(asked) = need_of(reply) else {
            return Ok(false);
        };
        let mut new = false;
        for pair in asked.chunks(2) {
            let [kind, name] = pair else {
                return Err(format!("an odd `need` reply {asked:?}"));
            };
            let kind = Kind::parse(kind).ok_or_else(|| format!("an unknown key kind `{kind}`"))?;
            new |= !self.seen.contains(&(kind, name.clone()));
            self.add(kind, name);
        }
        if !new {
            return Err(format!("keys it was given: {asked:?}"));
        }
        Ok(true)
    }
}

/// The (kind, name) strings of a `need` reply: an array that starts with
/// the bulk string `need`.
pub(super) fn need_of(reply: &Value) -> Option<Vec<String>> {
    let Value::Array(items) = reply else {
        return None;
    };
    let (first, rest) = items.split_first()?;
    if !matches!(first, Value::BulkString(b) if b == b"need") {
        return None;
    }
    rest.iter()
        .map(|v| match v {
            Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
            _ => None,
        })
        .collect()
}

/// How often a script may answer `need` in one call: each answer names
/// keys that only the previous round made readable (a task, then its
/// inbox), so a handful of rounds covers any script.
const NEED_ROUNDS: usize = 8;

impl Store {
    /// Runs `script` with the keys `fixed` adds, then the `declared` ones,
    /// and the arguments `args` adds after the declarations in `ARGV[1]`;
    /// while it answers `need`, again with those keys declared too.
    /// `what` names the script in errors.
    pub(super) async fn run_declared(
        &self,
        script: &Script,
        what: &str,
        declared: &mut Declared,
        fixed: impl Fn(&mut ScriptInvocation<'_>),
        args: impl Fn(&mut ScriptInvocation<'_>),
    ) -> Result<Value, StoreError> {
        let mut conn = self.conn.clone();
        for _ in 0..NEED_ROUNDS {
            let mut inv = script.prepare_invoke();
            fixed(&mut inv);
            declared.apply(&self.keys, &mut inv);
            args(&mut inv);
            let reply: Value = inv.invoke_async(&mut conn).await?;
            match declared.absorb(&reply) {
                Ok(true) => continue,
                Ok(false) => return Ok(reply),
                Err(why) => {
                    return Err(StoreError::Corrupt {
                        key: self.keys.prefix().to_string(),
                        what: format!("{what} asked for {why}"),
                    });
                }
            }
        }
        Err(StoreError::Corrupt {
            key: self.keys.prefix().to_string(),
            what: format!("{what} still asked for keys after {NEED_ROUNDS} calls"),
        })
    }
}

/// A script's reply as `T`.
pub(super) fn reply_as<T: redis::FromRedisValue>(reply: Value) -> Result<T, StoreError> {
    redis::from_redis_value(reply).map_err(|e| StoreError::Redis(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the static check finds wrong in one script's source: key
    /// names built in Lua (a prefix, a literal ending in `:` joined to
    /// something), or a global key named in it. A line that joins a hash
    /// field name says so in its comment (`not a key`).
    fn key_building(source: &str) -> Vec<String> {
        let mut found = Vec::new();
        for (n, line) in source.lines().enumerate() {
            let code = strip_comment(line);
            let field = line[code.len()..].contains("not a key");
            let mut problem = |what: &str| found.push(format!("line {}: {what}: {line}", n + 1));
            if code
                .split(|c: char| !c.is_alphanumeric() && c != '_')
                .any(|w| w == "prefix")
            {
                problem("a key prefix");
            }
            for lit in literals(&code) {
                if lit.text.contains("tt:") {
                    problem("a global key name");
                }
                let before = code[..lit.start].trim_end();
                let after = code[lit.end..].trim_start();
                let joined = before.ends_with("..") || after.starts_with("..");
                if lit.text.ends_with(':') && joined && !field {
                    problem("a key name joined in Lua");
                }
            }
        }
        found
    }

    /// A line without its `--` comment (outside quotes).
    fn strip_comment(line: &str) -> String {
        let mut quote = None;
        let mut prev = ' ';
        for (i, c) in line.char_indices() {
            match quote {
                Some(q) if c == q && prev != '\\' => quote = None,
                Some(_) => {}
                None if c == '\'' || c == '"' => quote = Some(c),
                None if c == '-' && prev == '-' => return line[..i - 1].to_string(),
                None => {}
            }
            prev = c;
        }
        line.to_string()
    }

    struct Literal<'a> {
        text: &'a str,
        /// Byte offsets of the opening and past the closing quote.
        start: usize,
        end: usize,
    }

    fn literals(code: &str) -> Vec<Literal<'_>> {
        let mut out = Vec::new();
        let mut open: Option<(char, usize)> = None;
        let mut prev = ' ';
        for (i, c) in code.char_indices() {
            match open {
                Some((q, at)) if c == q && prev != '\\' => {
                    out.push(Literal {
                        text: &code[at + 1..i],
                        start: at,
                        end: i + 1,
                    });
                    open = None;
                }
                Some(_) => {}
                None if c == '\'' || c == '"' => open = Some((c, i)),
                None => {}
            }
            prev = c;
        }
        out
    }

    fn lua_files() -> Vec<(String, String)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store/scripts");
        let mut out = Vec::new();
        for dir in [root.clone(), root.join("lib")] {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "lua") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    out.push((path.display().to_string(), text));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn no_script_builds_a_key_name() {
        let files = lua_files();
        assert!(files.len() > 20, "found only {} scripts", files.len());
        let problems: Vec<String> = files
            .iter()
            .flat_map(|(path, text)| {
                key_building(text)
                    .into_iter()
                    .map(move |p| format!("{path}: {p}"))
            })
            .collect();
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn every_script_takes_keys() {
        for (path, text) in lua_files() {
            if !path.contains("/lib/") {
                assert!(text.contains("KEYS["), "{path} uses no KEYS");
            }
        }
    }

    #[test]
    fn the_static_check_finds_key_building() {
        for bad in [
            "local key = prefix .. 'task:' .. id",
            "redis.call('SADD', 'tt:towns', town)",
            "local k = base .. 'inbox:' .. name",
            "local k = \"control:\" .. w",
        ] {
            assert!(!key_building(bad).is_empty(), "not flagged: {bad}");
        }
        for fine in [
            "-- prefix .. 'task:' .. id, in a comment",
            "local reason = 'attempt ' .. n .. ' failed: ' .. err",
            "id = 'adhoc-' .. n",
            "local key = declared('task', id)",
            "local f = 'agent:' .. name .. ':' -- a field of `usage`, not a key",
        ] {
            assert_eq!(key_building(fine), Vec::<String>::new(), "{fine}");
        }
    }

    #[test]
    fn need_replies_are_absorbed_once() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let need = Value::Array(vec![bulk("need"), bulk("task"), bulk("a")]);
        let mut d = Declared::new();
        assert_eq!(d.absorb(&need), Ok(true));
        assert_eq!(d.items, vec![(Kind::Task, "a".to_string())]);
        // Asking again for what it got would loop: an error.
        assert!(d.absorb(&need).is_err());
        let other = Value::Array(vec![bulk("ok"), bulk("1")]);
        assert_eq!(d.absorb(&other), Ok(false));
        let odd = Value::Array(vec![bulk("need"), bulk("sock"), bulk("a")]);
        assert!(d.absorb(&odd).is_err());
    }
}
