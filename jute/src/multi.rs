//! The body of `multi` (opcode 14) and `multiRead` (opcode 22) requests and responses.
//!
//! Neither is a jute record; ZooKeeper hand-writes them (`MultiOperationRecord`,
//! `MultiResponse`). Both are a sequence of `MultiHeader {int type; boolean done; int err}`, each
//! followed by one record, ended by the header `{-1, true, -1}` with nothing after it:
//!
//! ```text
//! request:  [hdr(op, false, -1) op-record]* hdr(-1, true, -1)
//! response: [hdr(op, false, 0) result-record | hdr(-1, false, err) ErrorResponse{err}]* hdr(-1, true, -1)
//! ```
//!
//! Decoding stops at the first header whose `done` is true, as ZooKeeper does.
//!
//! Request ops and their records: create/create2/createContainer → `CreateRequest`,
//! createTTL → `CreateTTLRequest`, delete → `DeleteRequest`, setData → `SetDataRequest`,
//! check → `CheckVersionRequest`, getChildren → `GetChildrenRequest`, getData →
//! `GetDataRequest`. A multi holds only write ops (the first seven) and a multiRead only read ops
//! (the last two); ZooKeeper refuses to mix them and so does [`decode_ops`].
//!
//! Result types and their records: create → `CreateResponse` (path only), create2 →
//! `Create2Response` (ZooKeeper also answers createTTL/createContainer ops this way), delete and
//! check → nothing, setData → `SetDataResponse`, getChildren → `GetChildrenResponse`, getData →
//! `GetDataResponse`, error (-1) → `ErrorResponse`. In a failed multi every result is an error:
//! the failing op carries its code, the ops before it `Ok` (0) and the ops after it
//! `RuntimeInconsistency` (-2); the reply header's err is 0 and the body carries the results. In a
//! multiRead each op succeeds or fails on its own.

use crate::codec::{Reader, Writer};
use crate::records::*;
use crate::{JuteError, OpCode};

/// One op of a multi or multiRead request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiOp {
    Create(CreateRequest),
    Create2(CreateRequest),
    CreateContainer(CreateRequest),
    CreateTtl(CreateTtlRequest),
    Delete(DeleteRequest),
    SetData(SetDataRequest),
    Check(CheckVersionRequest),
    GetChildren(GetChildrenRequest),
    GetData(GetDataRequest),
}

impl MultiOp {
    /// The opcode written in this op's header.
    pub fn op_code(&self) -> OpCode {
        match self {
            MultiOp::Create(_) => OpCode::Create,
            MultiOp::Create2(_) => OpCode::Create2,
            MultiOp::CreateContainer(_) => OpCode::CreateContainer,
            MultiOp::CreateTtl(_) => OpCode::CreateTtl,
            MultiOp::Delete(_) => OpCode::Delete,
            MultiOp::SetData(_) => OpCode::SetData,
            MultiOp::Check(_) => OpCode::Check,
            MultiOp::GetChildren(_) => OpCode::GetChildren,
            MultiOp::GetData(_) => OpCode::GetData,
        }
    }

    /// True for the ops a multiRead may hold.
    pub fn is_read(&self) -> bool {
        matches!(self, MultiOp::GetChildren(_) | MultiOp::GetData(_))
    }

    /// The path this op acts on.
    pub fn path(&self) -> &str {
        match self {
            MultiOp::Create(r) | MultiOp::Create2(r) | MultiOp::CreateContainer(r) => &r.path,
            MultiOp::CreateTtl(r) => &r.path,
            MultiOp::Delete(r) => &r.path,
            MultiOp::SetData(r) => &r.path,
            MultiOp::Check(r) => &r.path,
            MultiOp::GetChildren(r) => &r.path,
            MultiOp::GetData(r) => &r.path,
        }
    }

    fn decode(op: i32, r: &mut Reader<'_>) -> Result<Self, JuteError> {
        Ok(match OpCode::from_i32(op) {
            Some(OpCode::Create) => MultiOp::Create(CreateRequest::decode(r)?),
            Some(OpCode::Create2) => MultiOp::Create2(CreateRequest::decode(r)?),
            Some(OpCode::CreateContainer) => MultiOp::CreateContainer(CreateRequest::decode(r)?),
            Some(OpCode::CreateTtl) => MultiOp::CreateTtl(CreateTtlRequest::decode(r)?),
            Some(OpCode::Delete) => MultiOp::Delete(DeleteRequest::decode(r)?),
            Some(OpCode::SetData) => MultiOp::SetData(SetDataRequest::decode(r)?),
            Some(OpCode::Check) => MultiOp::Check(CheckVersionRequest::decode(r)?),
            Some(OpCode::GetChildren) => MultiOp::GetChildren(GetChildrenRequest::decode(r)?),
            Some(OpCode::GetData) => MultiOp::GetData(GetDataRequest::decode(r)?),
            _ => return Err(JuteError::InvalidMultiOp(op)),
        })
    }

    fn encode(&self, w: &mut Writer) {
        MultiHeader {
            op: self.op_code() as i32,
            done: false,
            err: -1,
        }
        .encode(w);
        match self {
            MultiOp::Create(r) | MultiOp::Create2(r) | MultiOp::CreateContainer(r) => r.encode(w),
            MultiOp::CreateTtl(r) => r.encode(w),
            MultiOp::Delete(r) => r.encode(w),
            MultiOp::SetData(r) => r.encode(w),
            MultiOp::Check(r) => r.encode(w),
            MultiOp::GetChildren(r) => r.encode(w),
            MultiOp::GetData(r) => r.encode(w),
        }
    }
}

/// Reads a multi request body: ops until the `done` header. Mixing read and write ops is
/// [`JuteError::MixedMultiOps`].
pub fn decode_ops(r: &mut Reader<'_>) -> Result<Vec<MultiOp>, JuteError> {
    let mut ops: Vec<MultiOp> = Vec::new();
    loop {
        let h = MultiHeader::decode(r)?;
        if h.done {
            return Ok(ops);
        }
        let op = MultiOp::decode(h.op, r)?;
        if let Some(first) = ops.first() {
            if first.is_read() != op.is_read() {
                return Err(JuteError::MixedMultiOps);
            }
        }
        ops.push(op);
    }
}

/// Writes a multi request body, terminator included.
pub fn encode_ops(ops: &[MultiOp], w: &mut Writer) {
    for op in ops {
        op.encode(w);
    }
    MultiHeader::END.encode(w);
}

/// One result of a multi or multiRead response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiResult {
    /// Result type `create`: the created path only.
    Create(CreateResponse),
    /// Result type `create2` (also for createTTL/createContainer ops): path and Stat.
    Create2(Create2Response),
    Delete,
    SetData(SetDataResponse),
    Check,
    GetChildren(GetChildrenResponse),
    GetData(GetDataResponse),
    /// Result type `error` (-1) with this error code (0 for ops before the failing one).
    Error(i32),
}

impl MultiResult {
    /// The type written in this result's header.
    pub fn op_code(&self) -> OpCode {
        match self {
            MultiResult::Create(_) => OpCode::Create,
            MultiResult::Create2(_) => OpCode::Create2,
            MultiResult::Delete => OpCode::Delete,
            MultiResult::SetData(_) => OpCode::SetData,
            MultiResult::Check => OpCode::Check,
            MultiResult::GetChildren(_) => OpCode::GetChildren,
            MultiResult::GetData(_) => OpCode::GetData,
            MultiResult::Error(_) => OpCode::Error,
        }
    }

    fn decode(op: i32, r: &mut Reader<'_>) -> Result<Self, JuteError> {
        Ok(match OpCode::from_i32(op) {
            Some(OpCode::Create) => MultiResult::Create(CreateResponse::decode(r)?),
            Some(OpCode::Create2) => MultiResult::Create2(Create2Response::decode(r)?),
            Some(OpCode::Delete) => MultiResult::Delete,
            Some(OpCode::SetData) => MultiResult::SetData(SetDataResponse::decode(r)?),
            Some(OpCode::Check) => MultiResult::Check,
            Some(OpCode::GetChildren) => MultiResult::GetChildren(GetChildrenResponse::decode(r)?),
            Some(OpCode::GetData) => MultiResult::GetData(GetDataResponse::decode(r)?),
            Some(OpCode::Error) => MultiResult::Error(ErrorResponse::decode(r)?.err),
            _ => return Err(JuteError::InvalidMultiOp(op)),
        })
    }

    fn encode(&self, w: &mut Writer) {
        let err = match self {
            MultiResult::Error(e) => *e,
            _ => 0,
        };
        MultiHeader {
            op: self.op_code() as i32,
            done: false,
            err,
        }
        .encode(w);
        match self {
            MultiResult::Create(r) => r.encode(w),
            MultiResult::Create2(r) => r.encode(w),
            MultiResult::Delete | MultiResult::Check => {}
            MultiResult::SetData(r) => r.encode(w),
            MultiResult::GetChildren(r) => r.encode(w),
            MultiResult::GetData(r) => r.encode(w),
            MultiResult::Error(e) => ErrorResponse { err: *e }.encode(w),
        }
    }
}

/// Reads a multi response body: results until the `done` header.
pub fn decode_results(r: &mut Reader<'_>) -> Result<Vec<MultiResult>, JuteError> {
    let mut results = Vec::new();
    loop {
        let h = MultiHeader::decode(r)?;
        if h.done {
            return Ok(results);
        }
        results.push(MultiResult::decode(h.op, r)?);
    }
}

/// Writes a multi response body, terminator included.
pub fn encode_results(results: &[MultiResult], w: &mut Writer) {
    for res in results {
        res.encode(w);
    }
    MultiHeader::END.encode(w);
}
