//! ZooKeeper's wire on the server side: the frame decoder (with four-letter words), the
//! ConnectRequest, and request header + body decoding with the server's conversion.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;
use zabkeeper_jute::{self as jute, Inbound, Reader, Record, RequestHeader};

fuzz_target!(|data: &[u8]| {
    let mut codec = jute::FrameCodec::server(64 * 1024);
    let mut buf = BytesMut::from(data);
    let mut first = true;
    while let Ok(Some(inbound)) = codec.decode(&mut buf) {
        let Inbound::Frame(payload) = inbound else {
            continue;
        };
        if first {
            first = false;
            let _ = jute::ConnectRequest::decode(&mut Reader::new(&payload));
            continue;
        }
        let mut r = Reader::new(&payload);
        if let Ok(header) = RequestHeader::decode(&mut r) {
            if let Ok(req) = jute::decode_request(header, r.rest()) {
                let _ = zabkeeper_server::zk::convert::decode(&req);
            }
        }
    }
    // The same bytes as a bare request payload (header + body), as after the handshake.
    let mut r = Reader::new(data);
    if let Ok(header) = RequestHeader::decode(&mut r) {
        if let Ok(req) = jute::decode_request(header, r.rest()) {
            let _ = zabkeeper_server::zk::convert::decode(&req);
        }
    }
});
