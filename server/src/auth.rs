//! Who a connection is: the identities ACLs are checked against (ZooKeeper's
//! `authInfo`), and the authentication providers that add them.
//!
//! Every connection starts with one identity, `ip:<peer address>` (ZooKeeper's
//! connection does the same), and gains more through `auth` requests (zkCli's
//! `addauth`), handled as ZooKeeper 3.8's registered providers do:
//! * `digest` with `user:password`: adds `digest:user:base64(sha1("user:password"))`
//!   (`DigestAuthenticationProvider.generateDigest`: the user is the text before the
//!   first `:`, the hash covers the whole text, so a text without `:` is accepted
//!   too). When that id equals the configured super digest (`super_digest`, like
//!   `zookeeper.DigestAuthenticationProvider.superDigest`) it also adds `super:`, which
//!   passes every ACL check;
//! * `ip`: adds the peer address again, whatever the data;
//! * `x509`: the connection's verified client certificate, whatever the data. A
//!   verified certificate already added `x509:<subject DN>` at the handshake
//!   ([`ConnAuth::add_x509`]), so this adds that id again; a connection without one
//!   gets AuthFailed (ZooKeeper's provider finds no certificate chain);
//! * any other scheme: AuthFailed, and the connection is closed after the answer.
//!
//! `x509` ids grant what `x509:<DN>` ACL entries allow, and `auth` ACL entries expand
//! to them as to digest ids (see [`crate::prep`]'s `acl.rs`).
//!
//! The identities go with every request of the connection: reads are checked on the
//! member that serves them, writes by the leader's prep (forwarded writes carry them).
//! ZooKeeper's ip provider knows IPv4 only: an IPv6 peer's id never matches an `ip`
//! ACL entry, and IPv4-mapped IPv6 peers are named by their IPv4 address.

use std::net::IpAddr;
use std::sync::Arc;

use zabkeeper_proto::ErrorCode;

pub use crate::prep::AuthId;

/// The identities of one connection, shared cheaply with each request it makes.
#[derive(Debug, Clone)]
pub struct ConnAuth {
    ids: Arc<[AuthId]>,
}

impl ConnAuth {
    /// A new connection from `peer`: just `ip:<peer>`.
    pub fn new(peer: IpAddr) -> ConnAuth {
        ConnAuth {
            ids: Arc::from(vec![ip_id(peer)]),
        }
    }

    /// The identities, in the order they were added.
    pub fn ids(&self) -> Arc<[AuthId]> {
        self.ids.clone()
    }

    /// An `auth` request: adds what the scheme's provider grants, or AuthFailed.
    pub fn authenticate(
        &mut self,
        scheme: &str,
        data: &[u8],
        peer: IpAddr,
        super_digest: Option<&str>,
    ) -> Result<(), ErrorCode> {
        let added = match scheme {
            "digest" => {
                // Java's `new String(authData)`: invalid UTF-8 becomes U+FFFD.
                let text = String::from_utf8_lossy(data);
                let id = digest_id(&text);
                let mut added = Vec::with_capacity(2);
                if super_digest == Some(id.as_str()) {
                    added.push(AuthId {
                        scheme: "super".into(),
                        id: String::new(),
                    });
                }
                added.push(AuthId {
                    scheme: "digest".into(),
                    id,
                });
                added
            }
            "ip" => vec![ip_id(peer)],
            "x509" => match self.ids.iter().find(|id| id.scheme == "x509") {
                Some(cert) => vec![cert.clone()],
                None => return Err(ErrorCode::AuthFailed),
            },
            _ => return Err(ErrorCode::AuthFailed),
        };
        let mut ids = self.ids.to_vec();
        ids.extend(added);
        self.ids = ids.into();
        Ok(())
    }

    /// A verified TLS client certificate (`tls.rs`): adds `x509:<subject DN>`, as
    /// ZooKeeper's `X509AuthenticationProvider` does.
    pub fn add_x509(&mut self, subject_dn: String) {
        let mut ids = self.ids.to_vec();
        ids.push(AuthId {
            scheme: "x509".into(),
            id: subject_dn,
        });
        self.ids = ids.into();
    }

    /// whoAmI for these identities (see [`who_am_i`]).
    pub fn who_am_i(&self) -> Vec<(String, String)> {
        who_am_i(&self.ids)
    }
}

/// whoAmI: (scheme, user) per identity, as ZooKeeper's `AuthUtil.getClientInfos`:
/// the user of a digest id is its part before `:`, of an ip id the address; `super`
/// has none.
pub fn who_am_i(ids: &[AuthId]) -> Vec<(String, String)> {
    ids.iter()
        .map(|id| {
            let user = match id.scheme.as_str() {
                "digest" => id.id.split(':').next().unwrap_or_default().to_string(),
                "ip" | "x509" => id.id.clone(),
                _ => String::new(),
            };
            (id.scheme.clone(), user)
        })
        .collect()
}

fn ip_id(peer: IpAddr) -> AuthId {
    let peer = match peer {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(peer),
        v4 => v4,
    };
    AuthId {
        scheme: "ip".into(),
        id: peer.to_string(),
    }
}

/// ZooKeeper's `DigestAuthenticationProvider.generateDigest`: the id a `digest` ACL
/// entry names for `user:password`, `user:base64(sha1("user:password"))`.
pub fn digest_id(user_password: &str) -> String {
    let user = user_password.split(':').next().unwrap_or_default();
    format!("{user}:{}", base64(&sha1(user_password.as_bytes())))
}

/// Standard base64 with padding, as `java.util.Base64` writes it.
fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// SHA-1: only for ZooKeeper's digest ids, which are defined with it.
fn sha1(message: &[u8]) -> [u8; 20] {
    use sha1::Digest;
    sha1::Sha1::digest(message).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn sha1_matches_the_standard_vectors() {
        assert_eq!(hex(&sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            hex(&sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex(&sha1(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
        assert_eq!(
            hex(&sha1(&vec![b'a'; 1_000_000])),
            "34aa973cd4c4daa4f61eeb2bdbad27316534016f"
        );
    }

    #[test]
    fn base64_pads_like_the_standard() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn digest_ids_are_zookeepers() {
        // The super digest of ZooKeeper's documentation (`super:admin`).
        assert_eq!(
            digest_id("super:admin"),
            "super:xQJmxLMiHGwaqBvst5y6rkB6HQs="
        );
        // The hash covers the whole text; the user is the part before the first `:`.
        assert_eq!(
            digest_id("bob:pa:ss"),
            format!("bob:{}", base64(&sha1(b"bob:pa:ss")))
        );
        assert_eq!(
            digest_id("nocolon"),
            format!("nocolon:{}", base64(&sha1(b"nocolon")))
        );
    }

    #[test]
    fn providers_add_ids_as_zookeeper_does() {
        let peer: IpAddr = "10.1.2.3".parse().unwrap();
        let mut auth = ConnAuth::new(peer);
        assert_eq!(
            auth.who_am_i(),
            vec![("ip".to_string(), "10.1.2.3".to_string())]
        );
        auth.authenticate("digest", b"bob:secret", peer, None)
            .unwrap();
        assert_eq!(auth.ids()[1].id, digest_id("bob:secret"));
        assert_eq!(
            auth.authenticate("kerberos", b"x", peer, None),
            Err(ErrorCode::AuthFailed)
        );
        assert_eq!(
            auth.authenticate("super", b"x", peer, None),
            Err(ErrorCode::AuthFailed)
        );
        assert_eq!(
            auth.authenticate("x509", b"", peer, None),
            Err(ErrorCode::AuthFailed),
            "no certificate"
        );
        auth.authenticate("ip", b"anything", peer, None).unwrap();
        assert_eq!(auth.ids().len(), 3);
        // The super digest adds `super:` before the digest id.
        let sup = digest_id("super:admin");
        auth.authenticate("digest", b"super:admin", peer, Some(&sup))
            .unwrap();
        let ids = auth.ids();
        assert_eq!((ids[3].scheme.as_str(), ids[3].id.as_str()), ("super", ""));
        assert_eq!(ids[4].id, sup);
        assert_eq!(
            auth.who_am_i(),
            vec![
                ("ip".to_string(), "10.1.2.3".to_string()),
                ("digest".to_string(), "bob".to_string()),
                ("ip".to_string(), "10.1.2.3".to_string()),
                ("super".to_string(), String::new()),
                ("digest".to_string(), "super".to_string()),
            ]
        );
        // A wrong super password is an ordinary digest id.
        let mut other = ConnAuth::new(peer);
        other
            .authenticate("digest", b"super:wrong", peer, Some(&sup))
            .unwrap();
        assert!(other.ids().iter().all(|id| id.scheme != "super"));
    }

    #[test]
    fn x509_auth_repeats_the_certificate_id() {
        let peer: IpAddr = "10.1.2.3".parse().unwrap();
        let mut auth = ConnAuth::new(peer);
        auth.add_x509("CN=alice".into());
        auth.authenticate("x509", b"ignored", peer, None).unwrap();
        let ids = auth.ids();
        assert_eq!(ids.len(), 3);
        assert_eq!(
            (ids[2].scheme.as_str(), ids[2].id.as_str()),
            ("x509", "CN=alice")
        );
    }

    #[test]
    fn mapped_ipv6_peers_are_named_by_their_ipv4_address() {
        let auth = ConnAuth::new("::ffff:127.0.0.1".parse().unwrap());
        assert_eq!(auth.ids()[0].id, "127.0.0.1");
    }
}
