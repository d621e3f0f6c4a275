//! The only `unsafe` of the firmware: volatile access to the board's memory-mapped registers,
//! the `wfi` instruction, and reading the painted stack. Everything above this module is safe
//! code over [`read`], [`write`], [`wait_for_interrupt`] and [`stack_high_water`].
//!
//! Soundness: each [`Block`] is a device register window of the MPS2 AN386 memory map (QEMU's
//! `hw/arm/mps2.c`, ARM's AN386 application note), never memory that Rust code owns; [`read`]
//! and [`write`] check that the offset is an aligned 32-bit register inside its window. Device
//! registers have side effects (reading a FIFO pops it), but no access through this API can
//! touch a Rust object.
#![allow(unsafe_code)]

/// A window of 32-bit device registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    /// SMSC LAN9118 Ethernet controller (its 256-byte register window).
    Lan9118,
    /// CMSDK APB UART0.
    Uart0,
    /// The Cortex-M SysTick timer (`SYST_CSR`, `SYST_RVR`, `SYST_CVR`, `SYST_CALIB`).
    SysTick,
}

impl Block {
    const fn base(self) -> usize {
        match self {
            Self::Lan9118 => 0x4020_0000,
            Self::Uart0 => 0x4000_4000,
            Self::SysTick => 0xE000_E010,
        }
    }

    const fn len(self) -> usize {
        match self {
            Self::Lan9118 => 0x100,
            Self::Uart0 => 0x1000,
            Self::SysTick => 0x10,
        }
    }

    fn register(self, offset: usize) -> usize {
        assert!(
            offset.is_multiple_of(4) && offset < self.len(),
            "bad register offset"
        );
        self.base() + offset
    }
}

/// Reads the 32-bit register at `offset` of `block`.
///
/// # Panics
/// When `offset` is unaligned or outside the block.
pub fn read(block: Block, offset: usize) -> u32 {
    let addr = block.register(offset);
    // SAFETY: an aligned device register of the board's memory map (see the module docs).
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

/// Writes the 32-bit register at `offset` of `block`.
///
/// # Panics
/// When `offset` is unaligned or outside the block.
pub fn write(block: Block, offset: usize, value: u32) {
    let addr = block.register(offset);
    // SAFETY: an aligned device register of the board's memory map (see the module docs).
    unsafe { core::ptr::write_volatile(addr as *mut u32, value) }
}

/// Sleeps until the next interrupt (the SysTick at the latest).
pub fn wait_for_interrupt() {
    // SAFETY: `wfi` only pauses the core until an interrupt; it touches no memory.
    unsafe { core::arch::asm!("wfi", options(nomem, nostack, preserves_flags)) }
}

fn stack_bounds() -> (usize, usize) {
    extern "C" {
        static _stack_end: u32;
        static _stack_start: u32;
    }
    // Only the addresses of the linker's symbols are taken.
    (
        core::ptr::addr_of!(_stack_end) as usize,
        core::ptr::addr_of!(_stack_start) as usize,
    )
}

/// Paints the stack again from its bottom up to 1 KiB below the caller's frame, so that
/// [`stack_high_water`] measures from here on (the serving loop apart from boot). The 1 KiB
/// left alone covers the caller and an exception frame pushed meanwhile (SysTick's is a few
/// dozen bytes).
#[inline(never)]
pub fn repaint_stack() {
    let (bottom, _) = stack_bounds();
    let here = 0u32;
    let limit = (core::ptr::addr_of!(here) as usize).saturating_sub(1024) & !3;
    let mut addr = bottom;
    while addr < limit {
        // SAFETY: an aligned word of the stack region more than 1 KiB below the current
        // frame: no live frame or object is there (the stack grows down from above it).
        unsafe { core::ptr::write_volatile(addr as *mut u32, cortex_m_rt::STACK_PAINT_VALUE) };
        addr += 4;
    }
}

/// The deepest the stack has ever been, in bytes: cortex-m-rt (`paint-stack`) fills the space
/// between the end of `.bss` (`_stack_end`) and the top of RAM (`_stack_start`) with
/// `0xCCCC_CCCC` at reset; the first word from the bottom that lost its paint marks the
/// high-water line (since reset, or since the last [`repaint_stack`]).
pub fn stack_high_water() -> usize {
    let (bottom, top) = stack_bounds();
    let mut addr = bottom;
    while addr < top {
        // SAFETY: an aligned word of the stack region, which is RAM reserved for the stack;
        // every word below the first unpainted one was never used (nothing refers to it).
        let word = unsafe { core::ptr::read_volatile(addr as *const u32) };
        if word != cortex_m_rt::STACK_PAINT_VALUE {
            break;
        }
        addr += 4;
    }
    top - addr
}
