//! The log: CMSDK APB UART0, transmit only, polled. QEMU prints what it sends (`-serial`).

use core::fmt;

use crate::hw::{self, Block};

const DATA: usize = 0x00;
const STATE: usize = 0x04;
const CTRL: usize = 0x08;
const BAUDDIV: usize = 0x10;
const STATE_TX_FULL: u32 = 1;
const CTRL_TX_EN: u32 = 1;

/// UART0, ready to send.
pub struct Uart(());

impl Uart {
    /// Sets 115,200 baud at the 25 MHz peripheral clock and enables the transmitter.
    pub fn init() -> Self {
        hw::write(Block::Uart0, BAUDDIV, 25_000_000 / 115_200);
        hw::write(Block::Uart0, CTRL, CTRL_TX_EN);
        Self(())
    }

    fn put(&mut self, byte: u8) {
        while hw::read(Block::Uart0, STATE) & STATE_TX_FULL != 0 {}
        hw::write(Block::Uart0, DATA, u32::from(byte));
    }
}

impl fmt::Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.put(b'\r');
            }
            self.put(b);
        }
        Ok(())
    }
}
