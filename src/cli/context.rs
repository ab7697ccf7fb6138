//! What every command needs: where the plan is, which town, which Redis.

use std::path::{Path, PathBuf};

use super::{CliError, Global};
use crate::escape::escape;
use crate::plan::{self, LoadError, Plan, town_name, valid_id};
use crate::store::{RedisTarget, Store, server};

#[derive(Debug, Clone)]
pub struct Context {
    /// The plan file as given (relative paths stay relative for messages).
    pub file: PathBuf,
    /// The directory the plan lives in: `.tt/` and relative paths start here.
    pub project_dir: PathBuf,
    town_flag: Option<String>,
}

impl Context {
    pub fn new(global: Global) -> Result<Self, CliError> {
        let cwd = std::env::current_dir().map_err(|source| CliError::Io {
            what: "cannot read the current directory".into(),
            source,
        })?;
        let file = global.file;
        let abs = cwd.join(&file);
        let project_dir = abs
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| cwd.clone());
        if let Some(t) = &global.town
            && let Some(why) = town_name::problem(t)
        {
            // clap does not say which one it read; the variable, when it
            // holds this very value.
            let from = if std::env::var_os("TT_TOWN").is_some_and(|v| v == t.as_str()) {
                "`TT_TOWN`"
            } else {
                "`--town`"
            };
            return Err(CliError::Usage {
                message: format!(
                    "town name `{}` given by {from} is not valid: it {why}",
                    escape(t)
                ),
                help: town_name::HELP.into(),
            });
        }
        Ok(Self {
            file,
            project_dir,
            town_flag: global.town,
        })
    }

    /// Loads and validates the plan.
    pub fn load_plan(&self) -> Result<Plan, CliError> {
        Ok(plan::load_file(&self.file)?)
    }

    /// Loads and checks the plan's `[town]`, `[meta]` and `[agents]` only
    /// (what a worker needs; see `plan::load_settings`).
    pub fn load_settings(&self) -> Result<plan::Settings, CliError> {
        Ok(plan::load_settings_file(&self.file)?)
    }

    /// `--town`/`TT_TOWN`, else `[town] name`, else the directory name.
    pub fn town(&self, from_file: Option<&str>) -> String {
        if let Some(t) = &self.town_flag {
            return t.clone();
        }
        if let Some(t) = from_file.filter(|t| valid_id(t)) {
            return t.to_string();
        }
        let dir = self
            .project_dir
            .canonicalize()
            .unwrap_or_else(|_| self.project_dir.clone());
        town_name::from_dir(&dir)
    }

    /// `REDIS_URL`, else `[town] redis_url`, else the embedded server.
    pub fn target(&self, file_url: Option<&str>) -> RedisTarget {
        let env = std::env::var("REDIS_URL").ok();
        RedisTarget::resolve(env.as_deref(), file_url, &self.project_dir)
    }

    /// Opens the store for the plan's town, migrating an old-layout town first.
    pub async fn store_for(&self, plan: &Plan) -> Result<Store, CliError> {
        let town = self.town(plan.town.name.as_deref());
        let target = self.target(plan.town.redis_url.as_deref());
        open_migrated(&target, &town).await
    }

    /// Opens the store for commands that work on a town's existing state
    /// (they read it, or change what is there): the file is consulted for
    /// `[town]` if it exists, but need not be valid. An embedded server is
    /// started only if this project has one (running, or stopped with its
    /// data on disk): a command that only looks never creates `.tt/` and a
    /// server in a directory with no town.
    /// A town an older tinytown left in the old key layout is not moved
    /// here (the command may only read), but said on stderr: it would
    /// otherwise look empty.
    pub async fn store(&self) -> Result<Store, CliError> {
        let store = self.store_as_is().await?;
        // A check that fails is the command's own error to report.
        if store.has_old_layout().await.unwrap_or(false) {
            eprintln!(
                "note: town `{town}` has keys in the key layout of an older tinytown, which this \
                 version does not read: `tt migrate --town {town}` (or `tt run`) moves them",
                town = store.town()
            );
        }
        Ok(store)
    }

    /// [`Context::store`] without the check for the old key layout, for
    /// `tt migrate`, which moves it.
    pub async fn store_as_is(&self) -> Result<Store, CliError> {
        let (town, target) = self.town_and_target()?;
        if let RedisTarget::Embedded { state_dir } = &target
            && !server::has_data(state_dir)
        {
            return Err(CliError::NoTown {
                state_dir: state_dir.clone(),
            });
        }
        Ok(Store::open(&target, &town).await?)
    }

    /// [`Context::store`] for commands that create state (`tt assign`,
    /// `tt send`): starts the embedded server if there is none yet
    /// (migrating an old-layout town first).
    pub async fn store_or_start(&self) -> Result<Store, CliError> {
        let (town, target) = self.town_and_target()?;
        open_migrated(&target, &town).await
    }

    /// The Redis [`Context::store`] opens, for a blocking connection of
    /// its own.
    pub fn redis_target(&self) -> Result<RedisTarget, CliError> {
        Ok(self.town_and_target()?.1)
    }

    /// The town and Redis, with `[town]` peeked from the file if it exists.
    /// A bad `[town] name` is an error here too (loading the plan reports
    /// it with its span): falling back to the directory's name would
    /// quietly show or change another town.
    fn town_and_target(&self) -> Result<(String, RedisTarget), CliError> {
        let (name, url) = self.peek_town()?;
        if self.town_flag.is_none()
            && let Some(name) = &name
            && let Some(why) = town_name::problem(name)
        {
            return Err(CliError::Usage {
                message: format!(
                    "town name `{}` in `[town] name` of `{}` is not valid: it {why}",
                    escape(name),
                    self.file.display()
                ),
                help: format!("{} — or pass `--town NAME`", town_name::HELP),
            });
        }
        Ok((self.town(name.as_deref()), self.target(url.as_deref())))
    }

    /// `[town] name` and `redis_url` of a file that need not be valid. A
    /// missing or unreadable file names neither; one that is refused (not
    /// a regular file, too large) is an error, as for every command.
    pub fn peek_town(&self) -> Result<(Option<String>, Option<String>), CliError> {
        match plan::read_plan(&self.file) {
            Ok(text) => Ok(plan::peek_town(&text)),
            Err(LoadError::Read { .. }) => Ok((None, None)),
            Err(e) => Err(e.into()),
        }
    }
}

/// Opens the store of a command that writes the town (`tt sync`, `tt
/// assign`, `tt send`, `tt agent`), moving keys an older tinytown left in the old
/// layout first (one round trip when there are none), so that no command
/// writes a town in both layouts. The note goes to stderr: stdout may be
/// JSON.
pub(super) async fn open_migrated(target: &RedisTarget, town: &str) -> Result<Store, CliError> {
    let store = Store::open(target, town).await?;
    if let Some(m) = store.migrate_if_old().await? {
        eprintln!("{}", super::migrate::describe(&m));
    }
    Ok(store)
}
