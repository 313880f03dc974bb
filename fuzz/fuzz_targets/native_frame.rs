//! The native protocol's frame decoder and request conversion: any bytes a client sends
//! give frames or a clean error, never a panic.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;
use zabkeeper_proto::frame::Codec;
use zabkeeper_proto::wire::{self, client_frame::Kind};

fuzz_target!(|data: &[u8]| {
    let mut codec = Codec::<wire::ClientFrame, wire::ServerFrame>::new(64 * 1024);
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = codec.decode(&mut buf) {
        if let Some(Kind::Request(r)) = frame.kind {
            let _ = zabkeeper_server::native::decode(r.op);
        }
    }
});
