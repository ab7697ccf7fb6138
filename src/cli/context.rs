//! What every command needs: where the plan is, which town, which Redis.

use std::path::{Path, PathBuf};

use super::{CliError, Global};
use crate::plan::{self, LoadError, Plan, valid_id};
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
            && !valid_id(t)
        {
            return Err(CliError::Usage {
                message: format!("town name `{t}` is not valid"),
                help: "use 1 to 128 of the characters A-Z a-z 0-9 . _ -".into(),
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
        town_from_dir(&dir)
    }

    /// `REDIS_URL`, else `[town] redis_url`, else the embedded server.
    pub fn target(&self, file_url: Option<&str>) -> RedisTarget {
        let env = std::env::var("REDIS_URL").ok();
        RedisTarget::resolve(env.as_deref(), file_url, &self.project_dir)
    }

    /// Opens the store for the plan's town.
    pub async fn store_for(&self, plan: &Plan) -> Result<Store, CliError> {
        let town = self.town(plan.town.name.as_deref());
        let target = self.target(plan.town.redis_url.as_deref());
        Ok(Store::open(&target, &town).await?)
    }

    /// Opens the store for commands that work on a town's existing state
    /// (they read it, or change what is there): the file is consulted for
    /// `[town]` if it exists, but need not be valid. An embedded server is
    /// started only if this project has one (running, or stopped with its
    /// data on disk): a command that only looks never creates `.tt/` and a
    /// server in a directory with no town.
    pub async fn store(&self) -> Result<Store, CliError> {
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
    /// `tt send`): starts the embedded server if there is none yet.
    pub async fn store_or_start(&self) -> Result<Store, CliError> {
        let (town, target) = self.town_and_target()?;
        Ok(Store::open(&target, &town).await?)
    }

    /// The Redis [`Context::store`] opens, for a blocking connection of
    /// its own.
    pub fn redis_target(&self) -> Result<RedisTarget, CliError> {
        Ok(self.town_and_target()?.1)
    }

    /// The town and Redis, with `[town]` peeked from the file if it exists.
    fn town_and_target(&self) -> Result<(String, RedisTarget), CliError> {
        let (name, url) = self.peek_town()?;
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

/// A town name from a directory name: invalid characters become `-`.
pub fn town_from_dir(dir: &Path) -> String {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(128)
        .collect();
    if cleaned.is_empty() {
        "default".into()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn town_names_from_directories_are_valid() {
        assert_eq!(town_from_dir(Path::new("/home/x/my shop")), "my-shop");
        assert_eq!(town_from_dir(Path::new("/")), "default");
        assert!(valid_id(&town_from_dir(Path::new("/tmp/ünï"))));
    }
}
