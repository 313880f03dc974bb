//! ACL list validation for create and setACL (ZooKeeper's `fixupACL`).
//!
//! A list must be non-empty; duplicates are dropped (first occurrence kept); each
//! entry's id must be valid for its scheme with the providers ZooKeeper registers
//! by default: `world` (only `anyone`), `digest` (`user:hash`) and `ip` (an address
//! with an optional prefix length). The `auth` scheme is expanded by ZooKeeper to
//! the session's authenticated ids; prep has no session auth, so the front-end must
//! expand it before prep and prep refuses it like any unknown scheme (InvalidACL).

use std::net::IpAddr;

use zabkeeper_proto::ErrorCode;

use crate::request::Acl;

/// The list as it will be stored, or InvalidAcl.
pub(crate) fn fixup(acl: &[Acl]) -> Result<Vec<Acl>, ErrorCode> {
    let mut out: Vec<Acl> = Vec::with_capacity(acl.len());
    for a in acl {
        if !out.contains(a) {
            out.push(a.clone());
        }
    }
    if out.is_empty() {
        return Err(ErrorCode::InvalidAcl);
    }
    for a in &out {
        let valid = match a.scheme.as_str() {
            "world" => a.id == "anyone",
            "digest" => digest_id_valid(&a.id),
            "ip" => ip_id_valid(&a.id),
            _ => false,
        };
        if !valid {
            return Err(ErrorCode::InvalidAcl);
        }
    }
    Ok(out)
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
            fixup(&list).unwrap(),
            vec![list[0].clone(), list[1].clone(), list[3].clone()]
        );
        assert!(fixup(&[acl("ip", "::1")]).is_ok());
        assert!(fixup(&[acl("digest", "a:b:")]).is_ok());
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
            assert_eq!(fixup(&bad), Err(ErrorCode::InvalidAcl), "{bad:?}");
        }
    }
}
