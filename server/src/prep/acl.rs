//! ACLs in prep: list validation (ZooKeeper's `fixupACL`) and permission checks
//! (`checkACL`).
//!
//! A list must be non-empty; duplicates are dropped (first occurrence kept); each
//! entry's id must be valid for its scheme with the providers this server registers:
//! `world` (only `anyone`), `digest` (`user:hash`), `ip` (an address with an optional
//! prefix length; IPv4 only, as ZooKeeper 3.8's provider) and `x509` (a distinguished
//! name, see [`x509_id_valid`]). As ZooKeeper registers its
//! `X509AuthenticationProvider` only when it is configured for client certificates,
//! `x509` is a valid scheme only once the server verifies them (client TLS with a
//! `tls_ca`: [`register_x509_provider`]); elsewhere an `x509` entry is InvalidACL, as
//! an unknown scheme is.
//!
//! An `auth` entry stands for the session's authenticated identities and is replaced
//! by one entry per id of an "authenticated" provider the session has (ZooKeeper's
//! `isAuthenticated()`): `digest` and `x509` ids, not `ip` (nor `super`, which has no
//! provider). With none it is InvalidACL.
//!
//! A permission is granted by an entry carrying the bit whose id is `world:anyone`
//! or matches one of the session's ids: digest and x509 ids by equality (an x509 entry
//! names the subject DN exactly as the server reports it in whoAmI, RFC 2253 as Java's
//! `X500Principal.getName()` writes it), ip entries by address prefix. An empty list
//! and a `super` id grant everything.

use zabkeeper_proto::ErrorCode;

use crate::request::Acl;

/// An identity a session has authenticated as (an entry of ZooKeeper's `authInfo`):
/// `digest:user:base64(sha1(user:password))`, `ip:<client address>`,
/// `x509:<subject DN>` or `super:...`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AuthId {
    pub scheme: String,
    pub id: String,
}

/// Whether this process verifies client certificates, so that `x509` is an ACL
/// scheme (ZooKeeper's provider registry is process-wide too).
static X509_PROVIDER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes `x509` a valid ACL scheme: called once at start by a server that verifies
/// client certificates.
pub fn register_x509_provider() {
    X509_PROVIDER.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// The list as it will be stored, or InvalidAcl. `auth` entries are expanded to
/// the session's digest and x509 ids.
pub(crate) fn fixup(acl: &[Acl], auth: &[AuthId]) -> Result<Vec<Acl>, ErrorCode> {
    fixup_with(
        acl,
        auth,
        X509_PROVIDER.load(std::sync::atomic::Ordering::Relaxed),
    )
}

/// [`fixup`] with the x509 provider registered or not.
fn fixup_with(acl: &[Acl], auth: &[AuthId], x509: bool) -> Result<Vec<Acl>, ErrorCode> {
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
            "x509" => x509 && x509_id_valid(&a.id),
            "auth" => {
                let before = out.len();
                let authenticated = |id: &&AuthId| matches!(id.scheme.as_str(), "digest" | "x509");
                for id in auth.iter().filter(authenticated) {
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

/// IPAuthenticationProvider.matches: whether the client address `addr` falls in
/// `acl` (`address[/prefix length]`). IPv4 only, as in ZooKeeper 3.8.
fn ip_matches(addr: &str, acl: &str) -> bool {
    let (net, bits) = match acl.split_once('/') {
        Some((n, b)) => (n, Some(b)),
        None => (acl, None),
    };
    let (Some(addr), Some(net)) = (v4_addr(addr), v4_addr(net)) else {
        return false;
    };
    let bits = match bits.map(java_parse_int) {
        None => 32,
        Some(Some(b)) if (0..=32).contains(&b) => b as u32,
        Some(_) => return false,
    };
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    addr & mask == net & mask
}

/// IPAuthenticationProvider.v4addr2Bytes: four `Integer.parseInt` parts in 0..=255.
fn v4_addr(s: &str) -> Option<u32> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut v = 0u32;
    for p in parts {
        match java_parse_int(p) {
            Some(b) if (0..=255).contains(&b) => v = v << 8 | b as u32,
            _ => return None,
        }
    }
    Some(v)
}

/// Java's `Integer.parseInt` for ASCII input: an optional sign, then decimal digits.
fn java_parse_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || digits.len() > 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: i64 = digits.parse().ok()?;
    let v = if s.starts_with('-') { -v } else { v };
    (i32::MIN as i64..=i32::MAX as i64)
        .contains(&v)
        .then_some(v)
}

/// Java's `id.split(":").length == 2`: trailing empty parts are dropped by `split`.
fn digest_id_valid(id: &str) -> bool {
    let mut parts: Vec<&str> = id.split(':').collect();
    while parts.len() > 1 && parts.last() == Some(&"") {
        parts.pop();
    }
    parts.len() == 2
}

/// IPAuthenticationProvider.isValid: an IPv4 address with an optional prefix length.
fn ip_id_valid(id: &str) -> bool {
    let (addr, bits) = match id.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (id, None),
    };
    v4_addr(addr).is_some()
        && bits.is_none_or(|b| java_parse_int(b).is_some_and(|b| (0..=32).contains(&b)))
}

/// X509AuthenticationProvider.isValid, `new X500Principal(id)`: an RFC 2253 name
/// (RFC 1779's `;` between RDNs accepted too). Empty is the empty name. Each RDN is
/// `type=value` pairs joined by `+`; a type is a keyword Java knows or an OID (with an
/// optional `OID.`); a value is `#` and hex, a quoted string, or a string whose `,+"\<>;`
/// are escaped with `\` (as is a `\` followed by two hex digits). Java also decodes a
/// `#` value as DER; here an even number of hex digits suffices.
pub(crate) fn x509_id_valid(id: &str) -> bool {
    let id = id.trim();
    id.is_empty()
        || split_unescaped(id, &[',', ';'])
            .is_some_and(|rdns| rdns.iter().all(|rdn| rdn_valid(rdn)))
}

fn rdn_valid(rdn: &str) -> bool {
    split_unescaped(rdn, &['+']).is_some_and(|avas| {
        avas.iter().all(|ava| {
            let Some((keyword, value)) = ava.split_once('=') else {
                return false;
            };
            keyword_valid(keyword.trim()) && value_valid(value.trim_start())
        })
    })
}

/// Splits at the separators outside quotes and escapes; None for an unterminated
/// quote or a trailing `\`.
fn split_unescaped<'a>(s: &'a str, separators: &[char]) -> Option<Vec<&'a str>> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if !quoted && separators.contains(&c) {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    if quoted || escaped {
        return None;
    }
    parts.push(&s[start..]);
    Some(parts)
}

/// AVAKeyword: the attribute names Java's X500Principal parses, or an OID.
fn keyword_valid(keyword: &str) -> bool {
    const KNOWN: [&str; 21] = [
        "CN",
        "C",
        "L",
        "S",
        "ST",
        "O",
        "OU",
        "T",
        "IP",
        "STREET",
        "DC",
        "DNQUALIFIER",
        "DNQ",
        "SURNAME",
        "GIVENNAME",
        "INITIALS",
        "GENERATION",
        "EMAIL",
        "EMAILADDRESS",
        "UID",
        "SERIALNUMBER",
    ];
    if KNOWN.iter().any(|k| k.eq_ignore_ascii_case(keyword)) {
        return true;
    }
    let oid = keyword
        .get(..4)
        .filter(|p| p.eq_ignore_ascii_case("OID."))
        .map_or(keyword, |_| &keyword[4..]);
    let arcs: Vec<&str> = oid.split('.').collect();
    arcs.len() >= 2
        && arcs
            .iter()
            .all(|a| !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()))
}

fn value_valid(value: &str) -> bool {
    if let Some(hex) = value.strip_prefix('#') {
        let hex = hex.trim_end();
        return !hex.is_empty() && hex.len() % 2 == 0 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    }
    if let Some(rest) = value.strip_prefix('"') {
        // The closing quote ends the value; only spaces may follow it.
        let mut escaped = false;
        for (i, c) in rest.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => return rest[i + 1..].trim().is_empty(),
                _ => {}
            }
        }
        return false;
    }
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => {
                let next = bytes.get(i + 1).copied();
                if next.is_some_and(|b| b",=+<>#;\"\\ ".contains(&b)) {
                    i += 2;
                } else if bytes
                    .get(i + 1..i + 3)
                    .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
                {
                    i += 3;
                } else {
                    return false;
                }
            }
            b'"' | b'<' | b'>' => return false,
            _ => i += 1,
        }
    }
    true
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
            fixup_with(&list, &[], true).unwrap(),
            vec![list[0].clone(), list[1].clone(), list[3].clone()]
        );
        assert!(fixup_with(&[acl("ip", "10.0.0.1/0")], &[], true).is_ok());
        assert!(fixup_with(&[acl("digest", "a:b:")], &[], true).is_ok());
        for dn in [
            "CN=alice,O=zabkeeper",
            "CN=Zab\\, Inc+UID=7;O=x",
            "cn=a, ou = b ,c=DE",
            "OID.2.5.4.3=a,1.2.840.113549.1.9.1=#160161",
            "CN=\"quoted, with comma\",O=q",
            "CN=\\41\\ b",
            "CN=",
            "",
        ] {
            assert!(fixup_with(&[acl("x509", dn)], &[], true).is_ok(), "{dn:?}");
            assert_eq!(
                fixup_with(&[acl("x509", dn)], &[], false),
                Err(ErrorCode::InvalidAcl),
                "x509 without the provider: {dn:?}"
            );
        }
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
            vec![acl("ip", "::1")],
            vec![acl("ip", "10.0.0")],
            vec![acl("auth", "")],
            vec![acl("sasl", "bob")],
            vec![acl("x509", "alice")],
            vec![acl("x509", "CN=a,,O=b")],
            vec![acl("x509", "BOGUS=a")],
            vec![acl("x509", "CN=a<b")],
            vec![acl("x509", "CN=\"open")],
            vec![acl("x509", "CN=a\\")],
            vec![acl("x509", "CN=#abc")],
            vec![acl("x509", "1.=a")],
            vec![acl("world", "anyone"), acl("bogus", "x")],
        ] {
            assert_eq!(
                fixup_with(&bad, &[], true),
                Err(ErrorCode::InvalidAcl),
                "{bad:?}"
            );
        }
    }

    fn id(scheme: &str, id: &str) -> AuthId {
        AuthId {
            scheme: scheme.into(),
            id: id.into(),
        }
    }

    #[test]
    fn auth_entries_expand_to_the_session_digest_and_x509_ids() {
        let session = [
            id("ip", "10.0.0.1"),
            id("digest", "bob:h1"),
            id("super", ""),
            id("x509", "CN=alice,O=zabkeeper"),
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
        let fixed = fixup_with(&list, &session, true).unwrap();
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
                    scheme: "x509".into(),
                    id: "CN=alice,O=zabkeeper".into()
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
            fixup_with(&list, &[id("ip", "10.0.0.1")], true),
            Err(ErrorCode::InvalidAcl)
        );
        // A certificate alone is enough for an `auth` entry.
        assert_eq!(
            fixup_with(
                &list[..1],
                &[id("ip", "10.0.0.1"), id("x509", "CN=a")],
                true
            )
            .unwrap(),
            vec![Acl {
                perms: 3,
                scheme: "x509".into(),
                id: "CN=a".into()
            }]
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
        // ZooKeeper 3.8's ip provider is IPv4 only, and parses parts with parseInt.
        let host = [Acl {
            perms: 4,
            scheme: "ip".into(),
            id: "127.0.0.1".into(),
        }];
        assert!(permits(&host, 4, &[id("ip", "127.0.0.1")]));
        assert!(permits(&host, 4, &[id("ip", "127.0.0.01")]));
        assert!(!permits(&host, 4, &[id("ip", "::1")]));
        // x509 ids match the DN exactly: another spelling of the same name does not.
        let cert = [Acl {
            perms: 1,
            scheme: "x509".into(),
            id: "CN=alice,O=zabkeeper".into(),
        }];
        assert!(permits(&cert, 1, &[id("x509", "CN=alice,O=zabkeeper")]));
        assert!(!permits(&cert, 1, &[id("x509", "CN=bob,O=zabkeeper")]));
        assert!(!permits(&cert, 1, &[id("x509", "cn=alice, o=zabkeeper")]));
        assert!(!permits(&cert, 2, &[id("x509", "CN=alice,O=zabkeeper")]));
        assert!(!permits(&cert, 1, &[id("digest", "CN=alice,O=zabkeeper")]));
    }
}
