//! ACLs as zkCli writes and prints them.
//!
//! A list is `scheme:id:perms` entries separated by commas (zkCli's `AclParser`): the
//! scheme is the text before the first `:`, the permissions the letters after the last
//! one (`c` CREATE, `d` DELETE, `r` READ, `w` WRITE, `a` ADMIN), the id what lies
//! between, so a digest id keeps its own colon (`digest:bob:HASH=:rw`). zkCli skips a
//! malformed entry or an unknown letter with a warning; the shell refuses the command
//! instead, so a typo never sets an ACL other than the one meant.
//!
//! `getAcl` prints each entry as zkCli does: `'scheme,'id` then `: perms` on the next
//! line, perms in zkCli's order `cdrwa`.

use zabkeeper_proto::perms;

/// One ACL entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclEntry {
    pub perms: i32,
    pub scheme: String,
    pub id: String,
}

const LETTERS: [(char, i32); 5] = [
    ('c', perms::CREATE),
    ('d', perms::DELETE),
    ('r', perms::READ),
    ('w', perms::WRITE),
    ('a', perms::ADMIN),
];

/// Parses `scheme:id:perms[,scheme:id:perms...]`.
pub fn parse_acl(text: &str) -> Result<Vec<AclEntry>, String> {
    text.split(',')
        .map(|entry| {
            let (first, last) = match (entry.find(':'), entry.rfind(':')) {
                (Some(f), Some(l)) if f != l => (f, l),
                _ => return Err(format!("{entry} does not have the form scheme:id:perm")),
            };
            let mut bits = 0;
            for c in entry[last + 1..].chars() {
                let (_, bit) = LETTERS
                    .iter()
                    .find(|(l, _)| *l == c)
                    .ok_or_else(|| format!("unknown perm type: {c} (use letters of crwda)"))?;
                bits |= bit;
            }
            Ok(AclEntry {
                perms: bits,
                scheme: entry[..first].to_string(),
                id: entry[first + 1..last].to_string(),
            })
        })
        .collect()
}

/// zkCli's `ZKUtil.getPermString`: the letters of `perms` in the order `cdrwa`.
pub fn perm_string(bits: i32) -> String {
    LETTERS
        .iter()
        .filter(|(_, b)| bits & b != 0)
        .map(|(c, _)| *c)
        .collect()
}

/// The `getAcl` lines for one entry.
pub fn entry_text(a: &AclEntry) -> String {
    format!("'{},'{}\n: {}\n", a.scheme, a.id, perm_string(a.perms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_zkcli() {
        assert_eq!(
            parse_acl("world:anyone:cdrwa,digest:bob:abc=:rw,ip:10.0.0.0/8:r,auth::a").unwrap(),
            vec![
                AclEntry {
                    perms: 31,
                    scheme: "world".into(),
                    id: "anyone".into()
                },
                AclEntry {
                    perms: 3,
                    scheme: "digest".into(),
                    id: "bob:abc=".into()
                },
                AclEntry {
                    perms: 1,
                    scheme: "ip".into(),
                    id: "10.0.0.0/8".into()
                },
                AclEntry {
                    perms: 16,
                    scheme: "auth".into(),
                    id: String::new()
                },
            ]
        );
        // No letters: no permission (zkCli's result too).
        assert_eq!(parse_acl("world:anyone:").unwrap()[0].perms, 0);
    }

    #[test]
    fn malformed_entries_are_refused() {
        assert!(parse_acl("world:anyone")
            .unwrap_err()
            .contains("scheme:id:perm"));
        assert!(parse_acl("world").is_err());
        assert!(parse_acl("world:anyone:rx").unwrap_err().contains("x"));
        assert!(parse_acl("world:anyone:r,").is_err());
    }

    #[test]
    fn prints_like_zkcli() {
        assert_eq!(perm_string(31), "cdrwa");
        assert_eq!(perm_string(perms::READ | perms::ADMIN), "ra");
        assert_eq!(perm_string(0), "");
        assert_eq!(
            entry_text(&AclEntry {
                perms: 31,
                scheme: "world".into(),
                id: "anyone".into()
            }),
            "'world,'anyone\n: cdrwa\n"
        );
    }
}
