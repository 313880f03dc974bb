//! Hostile lengths must not make the decoder allocate: a counting global allocator measures
//! the bytes requested while decoding input that claims gigabytes.
//!
//! This file is its own test binary so the allocator counts nothing but these tests; the count
//! is per thread, so the test harness's own threads do not disturb it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use zabkeeper_jute::*;

struct Counting;

thread_local! {
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATED.try_with(|a| a.set(a.get() + layout.size()));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATED.try_with(|a| a.set(a.get() + new_size));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Bytes allocated on this thread while running `f`.
fn allocated_by<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = ALLOCATED.with(|a| a.get());
    let out = f();
    let after = ALLOCATED.with(|a| a.get());
    (out, after - before)
}

#[test]
fn hostile_lengths_allocate_nothing_big() {
    let huge = [0x7f, 0xff, 0xff, 0xff];
    let cases: Vec<(&str, OpCode, Vec<u8>, bool)> = vec![
        // (name, op, body, is_request)
        (
            "setData data",
            OpCode::SetData,
            [&[0, 0, 0, 2, b'/', b'a'][..], &huge, &[1, 2, 3]].concat(),
            true,
        ),
        (
            "create path",
            OpCode::Create,
            [&huge[..], b"/ab"].concat(),
            true,
        ),
        (
            "create acl count",
            OpCode::Create,
            [&[0, 0, 0, 0, 0, 0, 0, 0][..], &huge, &[0; 12]].concat(),
            true,
        ),
        (
            "setWatches count",
            OpCode::SetWatches,
            [&[0; 8][..], &huge, &[0; 8]].concat(),
            true,
        ),
        (
            "getChildren reply count",
            OpCode::GetChildren,
            [&huge[..], &[0; 8]].concat(),
            false,
        ),
        (
            "getACL reply count",
            OpCode::GetAcl,
            [&huge[..], &[0; 24]].concat(),
            false,
        ),
        (
            "whoAmI reply count",
            OpCode::WhoAmI,
            [&huge[..], &[0; 8]].concat(),
            false,
        ),
        (
            "getData reply data",
            OpCode::GetData,
            [&huge[..], &[0; 3]].concat(),
            false,
        ),
    ];
    for (name, op, body, is_request) in cases {
        let (res, bytes) = allocated_by(|| {
            if is_request {
                decode_request(
                    RequestHeader {
                        xid: 1,
                        op: op as i32,
                    },
                    &body,
                )
                .map(|_| ())
            } else {
                decode_response(op, &body).map(|_| ())
            }
        });
        assert!(res.is_err(), "{name}: decoded hostile input");
        assert!(bytes < 1024, "{name}: allocated {bytes} bytes");
    }
}

#[test]
fn the_counter_does_count() {
    // Guards the test above against a counter that never moves.
    let (v, bytes) = allocated_by(|| vec![0u8; 4096]);
    assert_eq!(v.len(), 4096);
    assert!(bytes >= 4096);
}
