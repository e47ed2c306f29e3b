//! The per-packet paths allocate nothing: a counting global allocator watches seal, seal in
//! place, open, and the worker-context paths for every transform. (Allocations inside
//! aws-lc's C code bypass the Rust allocator; the primitives used per packet — AEAD seal/open
//! on a pre-built context, a copied HMAC context, AES on pre-expanded keys — do not allocate.)

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::{all_ciphers, ipv4_packet, ipv6_packet, sa_pair};

struct Counting;

// Per thread, so tests running in parallel do not see each other's allocations.
thread_local! {
    static WATCHING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn note_allocation() {
    if WATCHING.with(Cell::get) {
        ALLOCATIONS.with(|a| a.set(a.get() + 1));
    }
}

// SAFETY: every call is passed on to the system allocator unchanged; only counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: the caller's layout contract is passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr came from this allocator (the system's) with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: as for alloc and dealloc.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `f` on this thread.
fn allocations_in(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    WATCHING.with(|w| w.set(true));
    f();
    WATCHING.with(|w| w.set(false));
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn counting_allocator_sees_allocations() {
    assert!(allocations_in(|| drop(std::hint::black_box(vec![1u8; 10]))) >= 1);
}

#[test]
fn seal_and_open_allocate_nothing_per_packet() {
    for cipher in all_ciphers() {
        let (mut out_sa, mut in_sa) = sa_pair(cipher, 0x2323_0000);
        let packets = [
            ipv4_packet(1400, 1),
            ipv6_packet(1280, 2),
            ipv4_packet(40, 3),
        ];
        let mut buf = vec![0u8; 2000];
        let mut tampered = vec![0u8; 2000];
        let seal_ctx = out_sa.context();
        let open_ctx = in_sa.context();
        let mut block = out_sa.reserve(300).unwrap();
        let n = allocations_in(|| {
            for i in 0..300 {
                let inner = &packets[i % 3];
                let len = out_sa.seal(inner, &mut buf).unwrap();
                tampered[..len].copy_from_slice(&buf[..len]);
                tampered[len - 1] ^= 1;
                assert!(in_sa.open(&mut tampered[..len]).is_err());
                assert_eq!(in_sa.open(&mut buf[..len]).unwrap(), &inner[..]);

                let h = out_sa.header_len();
                buf[h..h + inner.len()].copy_from_slice(inner);
                let len = out_sa.seal_in_place(&mut buf, inner.len()).unwrap();
                let range = in_sa.open_in_place(&mut buf[..len]).unwrap();
                assert_eq!(range.len(), inner.len());

                let len = seal_ctx.seal(&mut block, inner, &mut buf).unwrap();
                let opened = open_ctx.open(&mut buf[..len]).unwrap();
                in_sa.commit(opened).unwrap();
            }
        });
        assert_eq!(n, 0, "{cipher}: {n} allocations in 300 packet rounds");
        assert_eq!(in_sa.counters().packets, 900);
        assert_eq!(in_sa.counters().auth_failed, 300);
    }
}
