//! Branch names. The town's branch is `tt/<town>`; an attempt's branch is
//! `tt/<town>@<task>/<attempt>`. Both cannot be `tt/<town>/…`: git keeps a
//! branch as a file, so `tt/<town>` and `tt/<town>/<task>` cannot both
//! exist. The attempt number keeps a retry from moving the branch of an
//! earlier attempt whose work did not land.
//!
//! Ids may hold what a ref component may not (a leading `.`, `..`, a
//! trailing `.lock`); such a component has every `.` spelled `%2E` (`%`
//! is in no id, so an escaped name never equals another id's).

/// The default `into` of a town.
pub fn town_branch(town: &str) -> String {
    format!("tt/{}", component(town))
}

/// Every attempt branch of a town starts with this.
pub fn attempt_prefix(town: &str) -> String {
    format!("tt/{}@", component(town))
}

/// The branch of one attempt.
pub fn attempt_branch(town: &str, task: &str, attempt: u32) -> String {
    format!("{}{}/{attempt}", attempt_prefix(town), component(task))
}

/// An id as a ref name component.
pub fn component(id: &str) -> String {
    let bad = id.starts_with('.')
        || id.ends_with('.')
        || id.contains("..")
        || id.ends_with(".lock")
        || id.is_empty();
    if bad {
        let escaped = id.replace('.', "%2E");
        if escaped.is_empty() {
            "%".to_string()
        } else {
            escaped
        }
    } else {
        id.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(town_branch("shop"), "tt/shop");
        assert_eq!(attempt_branch("shop", "login", 2), "tt/shop@login/2");
        assert_eq!(attempt_branch("shop", "..", 1), "tt/shop@%2E%2E/1");
        assert_eq!(component("x.lock"), "x%2Elock");
        assert_eq!(component(".hidden"), "%2Ehidden");
        assert_eq!(component("a.b"), "a.b");
    }
}
