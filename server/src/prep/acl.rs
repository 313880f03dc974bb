//! ACLs in prep: list validation (ZooKeeper's `fixupACL`) and permission checks
//! (`checkACL`).
//!
//! A list must be non-empty; duplicates are dropped (first occurrence kept); each
//! entry's id must be valid for its scheme with the providers ZooKeeper registers
//! by default: `world` (only `anyone`), `digest` (`user:hash`) and `ip` (an address
//! with an optional prefix length). An `auth` entry stands for the session's
//! authenticated identities and is replaced by one entry per `digest` id the
//! session has (ZooKeeper expands it to every id of an "authenticated" provider:
//! digest, not ip); with none it is InvalidACL.
//!
//! A permission is granted by an entry carrying the bit whose id is `world:anyone`
//! or matches one of the session's ids: digest ids by equality, ip entries by
//! address prefix. An empty list and a `super` id grant everything.

use std::net::IpAddr;

use zabkeeper_proto::ErrorCode;

use crate::request::Acl;

/// An identity a session has authenticated as (an entry of ZooKeeper's `authInfo`):
/// `digest:user:base64(sha1(user:password))`, `ip:<client address>`, or `super:...`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AuthId {
    pub scheme: String,
    pub id: String,
}

/// The list as it will be stored, or InvalidAcl. `auth` entries are expanded to
/// the session's digest ids.
pub(crate) fn fixup(acl: &[Acl], auth: &[AuthId]) -> Result<Vec<Acl>, ErrorCode> {
    let mut unique: Vec<&Acl> = Vec::with_capacity(acl.len());
    for a in acl {
        if !unique.contains(&a) {
            unique.push(a);
        }
    }
    if unique.is_empty() {
        return Err(ErrorCode::InvalidAcl);
    }
    let mut out = Vec::with_capacity(unique.len());
    for a in unique {
        let valid = match a.scheme.as_str() {
            "world" => a.id == "anyone",
            "digest" => digest_id_valid(&a.id),
            "ip" => ip_id_valid(&a.id),
            "auth" => {
                let before = out.len();
                for id in auth.iter().filter(|id| id.scheme == "digest") {
                    out.push(Acl {
                        perms: a.perms,
                        scheme: id.scheme.clone(),
                        id: id.id.clone(),
                    });
                }
                if out.len() == before {
                    return Err(ErrorCode::InvalidAcl);
                }
                continue;
            }
            _ => false,
        };
        if !valid {
            return Err(ErrorCode::InvalidAcl);
        }
        out.push(a.clone());
    }
    Ok(out)
}

/// ZooKeeper's `checkACL`: whether `auth` may do `perm` on a node with this ACL.
pub fn permits(acl: &[Acl], perm: i32, auth: &[AuthId]) -> bool {
    if acl.is_empty() || auth.iter().any(|id| id.scheme == "super") {
        return true;
    }
    acl.iter().any(|a| {
        a.perms & perm != 0
            && ((a.scheme == "world" && a.id == "anyone")
                || auth
                    .iter()
                    .any(|id| id.scheme == a.scheme && id_matches(&a.scheme, &id.id, &a.id)))
    })
}

fn id_matches(scheme: &str, session_id: &str, acl_id: &str) -> bool {
    match scheme {
        "ip" => ip_matches(session_id, acl_id),
        _ => session_id == acl_id,
    }
}

/// Whether the client address `addr` falls in `acl` (`address[/prefix length]`).
fn ip_matches(addr: &str, acl: &str) -> bool {
    let (net, bits) = match acl.split_once('/') {
        Some((n, b)) => (n, Some(b)),
        None => (acl, None),
    };
    let (Ok(addr), Ok(net)) = (addr.parse::<IpAddr>(), net.parse::<IpAddr>()) else {
        return false;
    };
    let (a, n, max) = match (addr, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => (u32::from(a) as u128, u32::from(n) as u128, 32u32),
        (IpAddr::V6(a), IpAddr::V6(n)) => (u128::from(a), u128::from(n), 128u32),
        _ => return false,
    };
    let bits = match bits.map(str::parse::<u32>) {
        None => max,
        Some(Ok(b)) if b <= max => b,
        Some(_) => return false,
    };
    let shift = max - bits;
    shift >= 128 || (a >> shift) == (n >> shift)
}

/// Java's `id.split(":").length == 2`: trailing empty parts are dropped by `split`.
fn digest_id_valid(id: &str) -> bool {
    let mut parts: Vec<&str> = id.split(':').collect();
    while parts.len() > 1 && parts.last() == Some(&"") {
        parts.pop();
    }
    parts.len() == 2
}

fn ip_id_valid(id: &str) -> bool {
    let (addr, bits) = match id.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (id, None),
    };
    let Ok(addr) = addr.parse::<IpAddr>() else {
        return false;
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    match bits {
        None => true,
        Some(b) => b.parse::<u32>().is_ok_and(|b| b <= max),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(scheme: &str, id: &str) -> Acl {
        Acl {
            perms: 31,
            scheme: scheme.into(),
            id: id.into(),
        }
    }

    #[test]
    fn valid_lists_are_deduplicated() {
        let list = vec![
            acl("world", "anyone"),
            acl("digest", "bob:abc="),
            acl("world", "anyone"),
            acl("ip", "10.0.0.0/8"),
        ];
        assert_eq!(
            fixup(&list, &[]).unwrap(),
            vec![list[0].clone(), list[1].clone(), list[3].clone()]
        );
        assert!(fixup(&[acl("ip", "::1")], &[]).is_ok());
        assert!(fixup(&[acl("digest", "a:b:")], &[]).is_ok());
    }

    #[test]
    fn invalid_lists_are_refused() {
        for bad in [
            vec![],
            vec![acl("world", "someone")],
            vec![acl("digest", "nocolon")],
            vec![acl("digest", "a:b:c")],
            vec![acl("ip", "300.1.1.1")],
            vec![acl("ip", "10.0.0.1/33")],
            vec![acl("auth", "")],
            vec![acl("sasl", "bob")],
            vec![acl("world", "anyone"), acl("bogus", "x")],
        ] {
            assert_eq!(fixup(&bad, &[]), Err(ErrorCode::InvalidAcl), "{bad:?}");
        }
    }

    fn id(scheme: &str, id: &str) -> AuthId {
        AuthId {
            scheme: scheme.into(),
            id: id.into(),
        }
    }

    #[test]
    fn auth_entries_expand_to_the_session_digest_ids() {
        let session = [
            id("ip", "10.0.0.1"),
            id("digest", "bob:h1"),
            id("digest", "amy:h2"),
        ];
        let list = [
            Acl {
                perms: 3,
                scheme: "auth".into(),
                id: "".into(),
            },
            acl("world", "anyone"),
        ];
        let fixed = fixup(&list, &session).unwrap();
        assert_eq!(
            fixed,
            vec![
                Acl {
                    perms: 3,
                    scheme: "digest".into(),
                    id: "bob:h1".into()
                },
                Acl {
                    perms: 3,
                    scheme: "digest".into(),
                    id: "amy:h2".into()
                },
                acl("world", "anyone"),
            ]
        );
        assert_eq!(
            fixup(&list, &[id("ip", "10.0.0.1")]),
            Err(ErrorCode::InvalidAcl)
        );
    }

    #[test]
    fn permissions_follow_zookeeper_check_acl() {
        let read_only = [Acl {
            perms: 1,
            scheme: "world".into(),
            id: "anyone".into(),
        }];
        assert!(permits(&read_only, 1, &[]));
        assert!(!permits(&read_only, 2, &[]));
        assert!(permits(&read_only, 2, &[id("super", "admin")]));
        assert!(permits(&[], 16, &[]));
        let bob = [Acl {
            perms: 31,
            scheme: "digest".into(),
            id: "bob:h1".into(),
        }];
        assert!(permits(&bob, 8, &[id("digest", "bob:h1")]));
        assert!(!permits(&bob, 8, &[id("digest", "bob:h2")]));
        assert!(!permits(&bob, 8, &[id("ip", "bob:h1")]));
        let net = [Acl {
            perms: 4,
            scheme: "ip".into(),
            id: "10.1.0.0/16".into(),
        }];
        assert!(permits(&net, 4, &[id("ip", "10.1.200.3")]));
        assert!(!permits(&net, 4, &[id("ip", "10.2.0.1")]));
        assert!(!permits(&net, 2, &[id("ip", "10.1.0.1")]));
        assert!(!permits(&net, 4, &[id("ip", "::1")]));
        let any = [Acl {
            perms: 4,
            scheme: "ip".into(),
            id: "0.0.0.0/0".into(),
        }];
        assert!(permits(&any, 4, &[id("ip", "192.168.1.1")]));
        let host = [Acl {
            perms: 4,
            scheme: "ip".into(),
            id: "::1".into(),
        }];
        assert!(permits(&host, 4, &[id("ip", "::1")]));
    }
}
