//! Transactions: the validated, deterministic form of a write.
//!
//! The leader turns a client's [`WriteOp`](crate::request::WriteOp) into a [`Txn`]
//! in `prep` (validation against the tree plus in-flight changes, sequence
//! suffix resolved, ephemeral owner and parent cversion fixed); zab replicates
//! the encoded bytes; every member applies the txn to its tree with
//! [`DataTree::apply`](crate::tree::DataTree::apply). Everything apply needs is in
//! the txn, so every member reaches the same tree.
//!
//! The encoding is a small hand-written varint format (see `tree::codec`): a
//! version byte, the header, then the body tagged by one byte. Unknown tags,
//! truncation and trailing bytes are errors, never panics.
//!
//! Format versions: 1 had no request number; 2 adds the client's request number
//! and acknowledged low-water mark (exactly-once writes, see `tree::results`) to the
//! header. Version 2 is written; both are read (a version-1 txn has request number
//! 0), so logs and snapshots of older servers stay readable. Any other version is
//! refused with "unknown txn format version".

use bytes::Bytes;

use crate::request::Acl;
use crate::tree::codec::{DecodeError, Reader, Writer};

/// The current encoding version (first byte of every encoded txn).
const FORMAT_VERSION: u8 = 2;
/// The format before request numbers; still decoded.
const FORMAT_VERSION_1: u8 = 1;

/// A validated write, ready to replicate and apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Txn {
    /// The session that issued the request (the owner of ephemerals it creates).
    pub session_id: i64,
    /// The client's request id, echoed in the reply.
    pub cxid: i32,
    pub zxid: i64,
    /// The leader's wall-clock time at prep: becomes ctime/mtime.
    pub time_ms: i64,
    /// The client's request number for an exactly-once write (0: none). Applying
    /// the txn records its result under (session, number).
    pub request_number: u64,
    /// Request numbers below this one are answered at the client: their recorded
    /// results may go.
    pub acked_below: u64,
    pub body: TxnBody,
}

/// What a txn does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnBody {
    /// `path` is final (with the sequence suffix); `ephemeral_owner` is 0, the session
    /// id, the container marker or the TTL encoding; `parent_cversion` is the parent's
    /// cversion after this create.
    Create {
        path: String,
        data: Bytes,
        acl: Vec<Acl>,
        ephemeral_owner: i64,
        parent_cversion: i32,
    },
    Delete {
        path: String,
    },
    /// `version` is the node's new data version.
    SetData {
        path: String,
        data: Bytes,
        version: i32,
    },
    /// `version` is the node's new ACL version.
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    },
    /// Only inside a multi: a version check that passed at prep.
    Check {
        path: String,
        version: i32,
    },
    /// Ops applied atomically with one zxid: Create, Delete, SetData and Check.
    Multi(Vec<TxnBody>),
    CreateSession {
        timeout_ms: i32,
    },
    /// Closes `Txn::session_id`; `ephemerals` are the session's ephemerals at prep.
    CloseSession {
        ephemerals: Vec<String>,
    },
    /// A request that failed validation, kept for completeness (ZooKeeper logs these).
    /// An exactly-once write that is refused becomes one, so its refusal is recorded.
    Error {
        code: i32,
    },
    /// An exactly-once multi that failed validation: every op's code.
    MultiError {
        results: Vec<i32>,
    },
}

mod tag {
    pub const CREATE: u8 = 1;
    pub const DELETE: u8 = 2;
    pub const SET_DATA: u8 = 3;
    pub const SET_ACL: u8 = 4;
    pub const CHECK: u8 = 5;
    pub const MULTI: u8 = 6;
    pub const CREATE_SESSION: u8 = 7;
    pub const CLOSE_SESSION: u8 = 8;
    pub const ERROR: u8 = 9;
    pub const MULTI_ERROR: u8 = 10;
}

/// Multi nesting deeper than this is refused on decode (prep never nests).
const MAX_DEPTH: usize = 2;

impl Txn {
    /// Encodes the txn into a new buffer.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + self.body.payload_len());
        self.encode_into(&mut out);
        out
    }

    /// Appends the encoded txn to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        w.u8(FORMAT_VERSION);
        w.i64(self.session_id);
        w.i32(self.cxid);
        w.i64(self.zxid);
        w.i64(self.time_ms);
        w.u64(self.request_number);
        w.u64(self.acked_below);
        self.body.encode(&mut w);
    }

    /// Decodes a txn; any malformed input is an error.
    pub fn decode(buf: &[u8]) -> Result<Txn, DecodeError> {
        let mut r = Reader::new(buf);
        let version = r.u8()?;
        if version != FORMAT_VERSION && version != FORMAT_VERSION_1 {
            return Err(DecodeError::Invalid("unknown txn format version"));
        }
        let session_id = r.i64()?;
        let cxid = r.i32()?;
        let zxid = r.i64()?;
        let time_ms = r.i64()?;
        let (request_number, acked_below) = if version == FORMAT_VERSION_1 {
            (0, 0)
        } else {
            (r.u64()?, r.u64()?)
        };
        let body = TxnBody::decode(&mut r, 0)?;
        r.finish()?;
        Ok(Txn {
            session_id,
            cxid,
            zxid,
            time_ms,
            request_number,
            acked_below,
            body,
        })
    }
}

impl TxnBody {
    fn payload_len(&self) -> usize {
        match self {
            TxnBody::Create { path, data, .. } | TxnBody::SetData { path, data, .. } => {
                path.len() + data.len()
            }
            TxnBody::Multi(ops) => ops.iter().map(|o| o.payload_len() + 8).sum(),
            _ => 16,
        }
    }

    fn encode(&self, w: &mut Writer<'_>) {
        match self {
            TxnBody::Create {
                path,
                data,
                acl,
                ephemeral_owner,
                parent_cversion,
            } => {
                w.u8(tag::CREATE);
                w.str(path);
                w.bytes(data);
                w.acl(acl);
                w.i64(*ephemeral_owner);
                w.i32(*parent_cversion);
            }
            TxnBody::Delete { path } => {
                w.u8(tag::DELETE);
                w.str(path);
            }
            TxnBody::SetData {
                path,
                data,
                version,
            } => {
                w.u8(tag::SET_DATA);
                w.str(path);
                w.bytes(data);
                w.i32(*version);
            }
            TxnBody::SetAcl { path, acl, version } => {
                w.u8(tag::SET_ACL);
                w.str(path);
                w.acl(acl);
                w.i32(*version);
            }
            TxnBody::Check { path, version } => {
                w.u8(tag::CHECK);
                w.str(path);
                w.i32(*version);
            }
            TxnBody::Multi(ops) => {
                w.u8(tag::MULTI);
                w.u64(ops.len() as u64);
                for op in ops {
                    op.encode(w);
                }
            }
            TxnBody::CreateSession { timeout_ms } => {
                w.u8(tag::CREATE_SESSION);
                w.i32(*timeout_ms);
            }
            TxnBody::CloseSession { ephemerals } => {
                w.u8(tag::CLOSE_SESSION);
                w.u64(ephemerals.len() as u64);
                for p in ephemerals {
                    w.str(p);
                }
            }
            TxnBody::Error { code } => {
                w.u8(tag::ERROR);
                w.i32(*code);
            }
            TxnBody::MultiError { results } => {
                w.u8(tag::MULTI_ERROR);
                w.u64(results.len() as u64);
                for c in results {
                    w.i32(*c);
                }
            }
        }
    }

    fn decode(r: &mut Reader<'_>, depth: usize) -> Result<TxnBody, DecodeError> {
        Ok(match r.u8()? {
            tag::CREATE => TxnBody::Create {
                path: r.str()?.to_string(),
                data: Bytes::copy_from_slice(r.bytes()?),
                acl: r.acl()?,
                ephemeral_owner: r.i64()?,
                parent_cversion: r.i32()?,
            },
            tag::DELETE => TxnBody::Delete {
                path: r.str()?.to_string(),
            },
            tag::SET_DATA => TxnBody::SetData {
                path: r.str()?.to_string(),
                data: Bytes::copy_from_slice(r.bytes()?),
                version: r.i32()?,
            },
            tag::SET_ACL => TxnBody::SetAcl {
                path: r.str()?.to_string(),
                acl: r.acl()?,
                version: r.i32()?,
            },
            tag::CHECK => TxnBody::Check {
                path: r.str()?.to_string(),
                version: r.i32()?,
            },
            tag::MULTI => {
                if depth >= MAX_DEPTH {
                    return Err(DecodeError::Invalid("multi nested too deep"));
                }
                let n = r.count(2)?;
                let mut ops = Vec::with_capacity(n);
                for _ in 0..n {
                    ops.push(TxnBody::decode(r, depth + 1)?);
                }
                TxnBody::Multi(ops)
            }
            tag::CREATE_SESSION => TxnBody::CreateSession {
                timeout_ms: r.i32()?,
            },
            tag::CLOSE_SESSION => {
                let n = r.count(1)?;
                let mut ephemerals = Vec::with_capacity(n);
                for _ in 0..n {
                    ephemerals.push(r.str()?.to_string());
                }
                TxnBody::CloseSession { ephemerals }
            }
            tag::ERROR => TxnBody::Error { code: r.i32()? },
            tag::MULTI_ERROR => {
                let n = r.count(1)?;
                let mut results = Vec::with_capacity(n);
                for _ in 0..n {
                    results.push(r.i32()?);
                }
                TxnBody::MultiError { results }
            }
            _ => return Err(DecodeError::Invalid("unknown txn tag")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_acl() -> impl Strategy<Value = Vec<Acl>> {
        prop::collection::vec(
            (any::<i32>(), "[a-z]{0,6}", "[ -~]{0,12}").prop_map(|(perms, scheme, id)| Acl {
                perms,
                scheme,
                id,
            }),
            0..3,
        )
    }

    fn arb_simple_body() -> impl Strategy<Value = TxnBody> {
        let path = "(/[a-z0-9]{1,5}){1,3}";
        let data = prop::collection::vec(any::<u8>(), 0..40).prop_map(Bytes::from);
        prop_oneof![
            (path, data.clone(), arb_acl(), any::<i64>(), any::<i32>()).prop_map(
                |(path, data, acl, o, c)| {
                    TxnBody::Create {
                        path,
                        data,
                        acl,
                        ephemeral_owner: o,
                        parent_cversion: c,
                    }
                }
            ),
            path.prop_map(|path| TxnBody::Delete { path }),
            (path, data, any::<i32>()).prop_map(|(path, data, version)| TxnBody::SetData {
                path,
                data,
                version
            }),
            (path, arb_acl(), any::<i32>()).prop_map(|(path, acl, version)| TxnBody::SetAcl {
                path,
                acl,
                version
            }),
            (path, any::<i32>()).prop_map(|(path, version)| TxnBody::Check { path, version }),
            any::<i32>().prop_map(|timeout_ms| TxnBody::CreateSession { timeout_ms }),
            prop::collection::vec(path, 0..4)
                .prop_map(|ephemerals| TxnBody::CloseSession { ephemerals }),
            any::<i32>().prop_map(|code| TxnBody::Error { code }),
            prop::collection::vec(any::<i32>(), 0..4)
                .prop_map(|results| TxnBody::MultiError { results }),
        ]
    }

    fn arb_body() -> impl Strategy<Value = TxnBody> {
        prop_oneof![
            3 => arb_simple_body(),
            1 => prop::collection::vec(arb_simple_body(), 0..5).prop_map(TxnBody::Multi),
        ]
    }

    fn arb_txn() -> impl Strategy<Value = Txn> {
        (
            any::<i64>(),
            any::<i32>(),
            any::<i64>(),
            any::<i64>(),
            (any::<u64>(), any::<u64>()),
            arb_body(),
        )
            .prop_map(
                |(session_id, cxid, zxid, time_ms, (request_number, acked_below), body)| Txn {
                    session_id,
                    cxid,
                    zxid,
                    time_ms,
                    request_number,
                    acked_below,
                    body,
                },
            )
    }

    proptest! {
        #[test]
        fn txn_round_trips(txn in arb_txn()) {
            let bytes = txn.encode();
            prop_assert_eq!(Txn::decode(&bytes), Ok(txn));
        }

        #[test]
        fn every_strict_prefix_fails_to_decode(txn in arb_txn()) {
            let bytes = txn.encode();
            for cut in 0..bytes.len() {
                prop_assert!(Txn::decode(&bytes[..cut]).is_err(), "prefix of {} bytes decoded", cut);
            }
        }

        #[test]
        fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = Txn::decode(&bytes);
        }
    }

    #[test]
    fn trailing_bytes_and_unknown_tags_are_refused() {
        let txn = Txn {
            session_id: 7,
            cxid: 1,
            zxid: 0x1_0000_0001,
            time_ms: 5,
            request_number: 0,
            acked_below: 0,
            body: TxnBody::Delete { path: "/a".into() },
        };
        let mut bytes = txn.encode();
        bytes.push(0);
        assert_eq!(Txn::decode(&bytes), Err(DecodeError::Trailing(1)));
        let mut bytes = txn.encode();
        // The body tag follows the header: version(1) + session(1) + cxid(1) + zxid(5)
        // + time(1) + request number(1) + acked below(1).
        bytes[11] = 99;
        assert_eq!(
            Txn::decode(&bytes),
            Err(DecodeError::Invalid("unknown txn tag"))
        );
        assert!(Txn::decode(&[2]).is_err());
    }

    #[test]
    fn version_1_txns_still_decode_and_other_versions_are_refused() {
        // A version-1 delete of "/a" by session 7, cxid 1, zxid 0x100000001, time 5, as
        // servers before request numbers wrote it.
        let mut v1 = vec![1u8];
        {
            let mut w = Writer::new(&mut v1);
            w.i64(7);
            w.i32(1);
            w.i64(0x1_0000_0001);
            w.i64(5);
            w.u8(tag::DELETE);
            w.str("/a");
        }
        let txn = Txn::decode(&v1).expect("version 1 decodes");
        assert_eq!(txn.session_id, 7);
        assert_eq!((txn.request_number, txn.acked_below), (0, 0));
        assert_eq!(txn.body, TxnBody::Delete { path: "/a".into() });
        let mut v3 = txn.encode();
        assert_eq!(v3[0], 2);
        v3[0] = 3;
        assert_eq!(
            Txn::decode(&v3),
            Err(DecodeError::Invalid("unknown txn format version"))
        );
    }

    #[test]
    fn deeply_nested_multi_is_refused() {
        let body = TxnBody::Multi(vec![TxnBody::Multi(vec![TxnBody::Multi(vec![])])]);
        let txn = Txn {
            session_id: 1,
            cxid: 1,
            zxid: 1,
            time_ms: 1,
            request_number: 0,
            acked_below: 0,
            body,
        };
        assert_eq!(
            Txn::decode(&txn.encode()),
            Err(DecodeError::Invalid("multi nested too deep"))
        );
    }
}
