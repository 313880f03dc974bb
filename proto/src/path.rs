//! Znode path rules, as ZooKeeper's `PathUtils.validatePath` enforces them.
//!
//! A path is absolute, has no empty, `.` or `..` component, no trailing slash (except
//! the root `/`), and no control or reserved characters. A sequential create may end
//! in `/` because the server appends the sequence number.

/// Why a path is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid path string \"{path}\": {reason}")]
pub struct InvalidPath {
    pub path: String,
    pub reason: &'static str,
}

fn invalid(path: &str, reason: &'static str) -> InvalidPath {
    InvalidPath {
        path: path.to_string(),
        reason,
    }
}

/// Checks a path; `sequential` allows the trailing `/` a sequential create may have.
pub fn validate(path: &str, sequential: bool) -> Result<(), InvalidPath> {
    if sequential && path.ends_with('/') {
        // The server appends digits, so validate as ZooKeeper does: with a stand-in suffix.
        return validate_inner(&format!("{path}1"), path);
    }
    validate_inner(path, path)
}

fn validate_inner(path: &str, shown: &str) -> Result<(), InvalidPath> {
    if path.is_empty() {
        return Err(invalid(shown, "path length must be > 0"));
    }
    if !path.starts_with('/') {
        return Err(invalid(shown, "path must start with / character"));
    }
    if path.len() == 1 {
        return Ok(());
    }
    if path.ends_with('/') {
        return Err(invalid(shown, "path must not end with / character"));
    }
    for component in path[1..].split('/') {
        match component {
            "" => return Err(invalid(shown, "empty node name specified")),
            "." | ".." => return Err(invalid(shown, "relative paths not allowed")),
            _ => {}
        }
    }
    for c in path.chars() {
        let bad = c == '\u{0}'
            || ('\u{1}'..='\u{1f}').contains(&c)
            || ('\u{7f}'..='\u{9f}').contains(&c)
            || ('\u{f000}'..='\u{f8ff}').contains(&c)
            || ('\u{fff0}'..='\u{ffff}').contains(&c);
        if bad {
            return Err(invalid(shown, "invalid character"));
        }
    }
    Ok(())
}

/// The parent of a valid path (`/` for top-level nodes and for `/` itself).
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// The last component of a valid path (empty for `/`).
pub fn name(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// Joins a parent path and a child name.
pub fn join(parent: &str, child: &str) -> String {
    if parent == "/" {
        format!("/{child}")
    } else {
        format!("{parent}/{child}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_paths() {
        for p in ["/", "/a", "/a/b", "/a-b_c.d", "/ü", "/a/.b", "/a/b..c"] {
            assert_eq!(validate(p, false), Ok(()), "{p}");
        }
        assert_eq!(validate("/a/", true), Ok(()));
        assert_eq!(validate("/", true), Ok(()));
    }

    #[test]
    fn refuses_invalid_paths() {
        for p in [
            "",
            "a",
            "/a/",
            "//",
            "/a//b",
            "/.",
            "/a/..",
            "/a/./b",
            "/a\u{0}",
            "/\u{1}",
            "/\u{fff5}",
        ] {
            assert!(validate(p, false).is_err(), "{p:?}");
        }
        assert!(validate("/a//", true).is_err());
        assert!(validate("a/", true).is_err());
    }

    #[test]
    fn parent_name_join() {
        assert_eq!(parent("/a/b"), "/a");
        assert_eq!(parent("/a"), "/");
        assert_eq!(parent("/"), "/");
        assert_eq!(name("/a/b"), "b");
        assert_eq!(name("/"), "");
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
    }
}
