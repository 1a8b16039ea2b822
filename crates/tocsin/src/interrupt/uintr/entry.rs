//! The user-interrupt handler entry, in assembly.
//!
//! Owns the machine-level frame: on delivery the CPU pushes RSP, RFLAGS, RIP and the vector
//! (after moving RSP down by 128 bytes, preserving the red zone) and clears UIF. The hardware
//! saves nothing else, while the Rust code it calls may use any caller-saved general register
//! and SIMD state. So the entry saves the caller-saved GPRs (the callee-saved ones are kept
//! by the Rust function per the System V ABI), realigns the stack to 64 bytes, saves the
//! whole extended state with `XSAVE` (mask all ones: every component enabled in XCR0, into
//! an area of [`XSAVE_BYTES`] bytes sized from CPUID.(EAX=0Dh,ECX=0):EBX), clears DF, calls
//! `tocsin_uintr_handler(vector)`, restores with `XRSTOR`, pops, drops the vector and
//! returns with `UIRET` (F3 0F 01 EC), which restores RIP, RFLAGS, RSP and sets UIF.
//!
//! It must not touch anything but this frame; the Rust side must be async-signal-safe.
//!
//! ## First instruction
//! The entry starts with a `NOP`, and [`prepare`] (run by every registration) reads the
//! entry's code page so that it is mapped in this process. Together they guarantee that the
//! first instruction of the handler cannot fault. Architecturally a fault there would be
//! harmless (the kernel fixes it and the handler restarts), but the Bochs emulator the
//! `uintr` mode is validated on (`tests/uintr-emu`, commit 783b58fd) does not record the
//! handler's address as the restart point when it delivers a user interrupt
//! (`deliver_UINTR` in `cpu/uintr.cc`, unlike `HandleExtInterrupt`, never sets
//! `prev_rip = RIP`): a fault on the handler's first instruction — the instruction fetch
//! in a forked child, whose page tables do not map the program's text until it is used,
//! or the first `push` onto a stack page never touched — restarts the *interrupted*
//! instruction with the delivery frame still pushed (RSP 160+ bytes lower), UIF = 0 and
//! the interrupt consumed. The interrupted code then runs on a shifted stack: a `ret`
//! pops the pushed vector number (a SIGSEGV at address 1 in `bench notify`), locals are
//! read from the wrong slots, and no handler runs (the forked-receiver test). With a
//! `NOP` first, a fault on the stack `push` restarts that push, as it should; the code
//! page read makes the `NOP`'s own fetch fault-free.

use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

/// Bytes of the XSAVE area (a multiple of 64), set by [`prepare`] before registration.
/// Not `#[no_mangle]`: a crate-local symbol, so that the entry's RIP-relative load links
/// into a shared library too (`libmpi_abi.so`; an exported symbol would need the GOT).
pub static TOCSIN_XSAVE_BYTES: AtomicU64 = AtomicU64::new(4096);

std::arch::global_asm!(
    ".globl tocsin_uintr_entry",
    ".p2align 4",
    "tocsin_uintr_entry:",
    // First instruction: one that cannot fault (see "First instruction" above).
    "nop",
    "push rax",
    "push rcx",
    "push rdx",
    "push rsi",
    "push rdi",
    "push r8",
    "push r9",
    "push r10",
    "push r11",
    "push rbp",
    "mov rbp, rsp",
    "and rsp, -64",
    "sub rsp, qword ptr [rip + {size}]",
    // XRSTOR requires the XSAVE header's reserved bytes (512..576) to be zero.
    "xor eax, eax",
    "mov qword ptr [rsp + 512], rax",
    "mov qword ptr [rsp + 520], rax",
    "mov qword ptr [rsp + 528], rax",
    "mov qword ptr [rsp + 536], rax",
    "mov qword ptr [rsp + 544], rax",
    "mov qword ptr [rsp + 552], rax",
    "mov qword ptr [rsp + 560], rax",
    "mov qword ptr [rsp + 568], rax",
    "mov eax, -1",
    "mov edx, -1",
    "xsave64 [rsp]",
    // vector: above the 10 pushed registers
    "mov rdi, qword ptr [rbp + 80]",
    "cld",
    "call {handler}",
    "mov eax, -1",
    "mov edx, -1",
    "xrstor64 [rsp]",
    "mov rsp, rbp",
    "pop rbp",
    "pop r11",
    "pop r10",
    "pop r9",
    "pop r8",
    "pop rdi",
    "pop rsi",
    "pop rdx",
    "pop rcx",
    "pop rax",
    "add rsp, 8",
    ".byte 0xf3, 0x0f, 0x01, 0xec",
    size = sym TOCSIN_XSAVE_BYTES,
    handler = sym tocsin_uintr_handler,
);

extern "C" {
    fn tocsin_uintr_entry();
}

/// A replacement for the engine dispatch, for benchmarks that time raw delivery.
static HOOK: AtomicPtr<()> = AtomicPtr::new(std::ptr::null_mut());

/// Makes the handler call `hook(vector)` instead of the progress engine (or restores the
/// engine with `None`). For measurement programs (`tocsin bench notify`); a communicator in
/// `uintr` mode must not be running at the same time in this process.
///
/// # Safety
/// `hook` runs in interrupt context on whatever the thread was doing: it must be
/// async-signal-safe (atomics only, no allocation, no lock) and must not unwind.
pub unsafe fn set_hook(hook: Option<extern "C" fn(u64)>) {
    HOOK.store(
        hook.map_or(std::ptr::null_mut(), |f| f as *mut ()),
        Ordering::SeqCst,
    );
}

/// Called by the entry with the vector number. Async-signal-safe: saves errno and
/// dispatches to the progress engine (or to the hook, if one is set).
extern "C" fn tocsin_uintr_handler(vector: u64) {
    super::super::preserving_errno(|| {
        let h = HOOK.load(Ordering::SeqCst);
        if h.is_null() {
            super::super::dispatch();
        } else {
            // SAFETY: only `set_hook` stores non-null values, all `extern "C" fn(u64)`.
            let f: extern "C" fn(u64) = unsafe { std::mem::transmute(h) };
            f(vector);
        }
    });
}

/// Address of the entry, for `uintr_register_handler`.
pub fn address() -> u64 {
    tocsin_uintr_entry as *const () as u64
}

/// Sizes the XSAVE area from CPUID.(EAX=0Dh,ECX=0):EBX (bytes needed for the components
/// enabled in XCR0), rounded up to 64, and maps the entry's code page in this process (a
/// read of its first byte: see "First instruction" in the module documentation; a forked
/// child registers again, so it maps the page in its own page tables).
pub fn prepare() {
    // SAFETY: the entry's first byte is in this program's text, which is readable.
    let first = unsafe { std::ptr::read_volatile(address() as *const u8) };
    debug_assert_eq!(first, 0x90, "the entry starts with a NOP");
    // CPUID leaf 0Dh exists on every CPU with XSAVE (all UINTR CPUs).
    let ebx = std::arch::x86_64::__cpuid_count(0xD, 0).ebx as u64;
    let bytes = ebx.max(576).div_ceil(64) * 64;
    TOCSIN_XSAVE_BYTES.store(bytes, Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    #[test]
    fn xsave_area_is_sized_and_aligned() {
        super::prepare();
        let b = super::TOCSIN_XSAVE_BYTES.load(std::sync::atomic::Ordering::SeqCst);
        assert!(b >= 576 && b % 64 == 0, "{b}");
        // SAFETY: the entry's first byte is readable program text.
        let first = unsafe { std::ptr::read_volatile(super::address() as *const u8) };
        assert_eq!(
            first, 0x90,
            "the entry must start with a NOP (module documentation)"
        );
        assert_ne!(super::address(), 0);
    }
}
