//! Town names: what `--town`, `TT_TOWN` and `[town] name` may hold, and
//! the name a project directory gives a town that names none.
//!
//! A town's name is the hash tag of every key it has (`tt:{<town>}:…`,
//! `store::keys`), so it may hold no `{`, `}` or `:` (or a town could reach
//! another's keys, or its keys a slot that is not its own), no glob
//! character (`*`, `?`, `[`, used to SCAN for it) and no whitespace: the
//! same `[A-Za-z0-9._-]{1,128}` as task ids ([`super::valid_id`]).

use std::path::Path;

/// What a bad town name's message suggests.
pub const HELP: &str = "use 1 to 128 of the characters A-Z a-z 0-9 . _ - \
                        (the name is part of every Redis key of the town)";

/// Why `name` cannot name a town (`contains `:``), or `None` if it can.
pub fn problem(name: &str) -> Option<String> {
    super::id_problem(name)
}

/// The town of a project in directory `dir`, when neither `--town`,
/// `TT_TOWN` nor `[town] name` names one: the directory's name with each
/// character outside `A-Z a-z 0-9 . _ -` replaced by `-` (`my shop` →
/// `my-shop`, `café` → `caf-`), cut to 128 characters; `default` for a
/// directory with no name (`/`).
pub fn from_dir(dir: &Path) -> String {
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
    fn directory_names_are_slugified_into_valid_town_names() {
        assert_eq!(from_dir(Path::new("/home/x/my shop")), "my-shop");
        assert_eq!(from_dir(Path::new("/home/x/shop")), "shop");
        assert_eq!(from_dir(Path::new("/srv/a:b{c}*d")), "a-b-c--d");
        assert_eq!(from_dir(Path::new("/tmp/café")), "caf-");
        assert_eq!(from_dir(Path::new("/")), "default");
        let long = format!("/tmp/{}", "x".repeat(300));
        assert_eq!(from_dir(Path::new(&long)).len(), 128);
        for dir in ["/tmp/ünï", "/tmp/a b\tc", "/tmp/{x}", "/tmp/*"] {
            let town = from_dir(Path::new(dir));
            assert_eq!(problem(&town), None, "{dir} gave {town}");
        }
    }

    #[test]
    fn unsafe_town_names_say_what_is_wrong() {
        assert_eq!(problem("shop"), None);
        assert_eq!(problem("my-shop.v2_x"), None);
        assert_eq!(problem("a:b").as_deref(), Some("contains `:`"));
        assert_eq!(problem("{shop}").as_deref(), Some("contains `{` and `}`"));
        assert_eq!(
            problem("a b*c").as_deref(),
            Some("contains a space and `*`")
        );
        assert_eq!(problem("a\tb").as_deref(), Some("contains a tab"));
        assert_eq!(problem("").as_deref(), Some("is empty"));
        assert_eq!(
            problem(&"x".repeat(129)).as_deref(),
            Some("is 129 characters long (at most 128)")
        );
    }
}
