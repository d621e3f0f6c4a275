//! A smoltcp [`Device`] for the SMSC LAN9118 Ethernet controller (MAC + PHY), polled.
//!
//! Register model: the LAN9118 datasheet and QEMU's `hw/net/lan9118.c`. The chip has FIFOs
//! instead of DMA: a received frame is a word in the RX status FIFO (its length, CRC
//! included, and error bits) and its bytes in the RX data FIFO, read one 32-bit word at a time;
//! a frame to send is two command words (TX command A: buffer size, first and last segment;
//! TX command B: frame length) followed by its bytes, written into the TX data FIFO. The MAC's
//! own registers sit behind an indirect pair (`MAC_CSR_CMD` / `MAC_CSR_DATA`), and the PHY's
//! behind the MAC's MII pair (`MII_ACC` / `MII_DATA`).
//!
//! Interrupts are not used: the firmware polls the FIFOs on every 1 ms SysTick.

use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use smoltcp::wire::EthernetAddress;

use crate::hw::{self, Block};

// System control and status registers (byte offsets).
const RX_DATA_FIFO: usize = 0x00;
const TX_DATA_FIFO: usize = 0x20;
const RX_STATUS_FIFO: usize = 0x40;
const ID_REV: usize = 0x50;
const INT_STS: usize = 0x58;
const INT_EN: usize = 0x5c;
const BYTE_TEST: usize = 0x64;
const RX_CFG: usize = 0x6c;
const TX_CFG: usize = 0x70;
const HW_CFG: usize = 0x74;
const RX_FIFO_INF: usize = 0x7c;
const TX_FIFO_INF: usize = 0x80;
const PMT_CTRL: usize = 0x84;
const MAC_CSR_CMD: usize = 0xa4;
const MAC_CSR_DATA: usize = 0xa8;

// MAC registers (indices through MAC_CSR_CMD).
const MAC_CR: u32 = 1;
const MAC_ADDRH: u32 = 2;
const MAC_ADDRL: u32 = 3;
const MII_ACC: u32 = 6;
const MII_DATA: u32 = 7;

const BYTE_TEST_VALUE: u32 = 0x8765_4321;
const HW_CFG_SRST: u32 = 1;
const PMT_CTRL_READY: u32 = 1;
const CSR_BUSY: u32 = 1 << 31;
const CSR_READ: u32 = 1 << 30;
const MAC_CR_RXEN: u32 = 1 << 2;
const MAC_CR_TXEN: u32 = 1 << 3;
const MAC_CR_FDPX: u32 = 1 << 20;
const TX_CFG_TX_ON: u32 = 1 << 1;
/// Let the TX status FIFO overrun: the driver never reads it.
const TX_CFG_TXSAO: u32 = 1 << 2;
const TX_CMD_A_FIRST: u32 = 1 << 13;
const TX_CMD_A_LAST: u32 = 1 << 12;
const RX_STS_ERROR: u32 = 1 << 15;
/// The internal PHY's MII address.
const PHY_ADDR: u32 = 1;
const MII_BUSY: u32 = 1;
const MII_WRITE: u32 = 1 << 1;
const PHY_BCR: u32 = 0;
const PHY_BSR: u32 = 1;
const PHY_BCR_AUTONEG: u32 = 1 << 12;
const PHY_BCR_RESTART_AUTONEG: u32 = 1 << 9;
const PHY_BSR_LINK: u32 = 1 << 2;

/// The largest Ethernet frame without its CRC.
pub const MTU: usize = 1514;
/// Polls of a self-clearing bit before the chip is declared stuck.
const SPINS: u32 = 100_000;

/// Why the controller could not be brought up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// `BYTE_TEST` did not read back its fixed pattern: no LAN9118 at the address.
    NotFound(u32),
    /// A self-clearing bit (soft reset, CSR or MII busy) never cleared.
    Stuck(&'static str),
}

/// The controller, initialised: MAC receiving and transmitting, PHY autonegotiating.
pub struct Lan9118 {
    mac: EthernetAddress,
    rx: &'static mut [u8; MTU],
    tx: &'static mut [u8; MTU],
}

/// The driver's two frame buffers (statics: [`Lan9118::init`] borrows them for good).
pub struct Buffers {
    /// The frame received last.
    pub rx: [u8; MTU],
    /// The frame being sent.
    pub tx: [u8; MTU],
}

impl Buffers {
    /// Zeroed buffers.
    pub const fn new() -> Self {
        Self {
            rx: [0; MTU],
            tx: [0; MTU],
        }
    }
}

fn read(offset: usize) -> u32 {
    hw::read(Block::Lan9118, offset)
}

fn write(offset: usize, value: u32) {
    hw::write(Block::Lan9118, offset, value);
}

/// Waits until `done` holds, at most [`SPINS`] polls.
fn spin_until(what: &'static str, mut done: impl FnMut() -> bool) -> Result<(), Error> {
    for _ in 0..SPINS {
        if done() {
            return Ok(());
        }
    }
    Err(Error::Stuck(what))
}

fn mac_csr_idle() -> Result<(), Error> {
    spin_until("MAC_CSR_CMD busy", || read(MAC_CSR_CMD) & CSR_BUSY == 0)
}

fn mac_read(reg: u32) -> Result<u32, Error> {
    mac_csr_idle()?;
    write(MAC_CSR_CMD, CSR_BUSY | CSR_READ | reg);
    mac_csr_idle()?;
    Ok(read(MAC_CSR_DATA))
}

fn mac_write(reg: u32, value: u32) -> Result<(), Error> {
    mac_csr_idle()?;
    write(MAC_CSR_DATA, value);
    write(MAC_CSR_CMD, CSR_BUSY | reg);
    mac_csr_idle()
}

fn mii_idle() -> Result<(), Error> {
    for _ in 0..SPINS {
        if mac_read(MII_ACC)? & MII_BUSY == 0 {
            return Ok(());
        }
    }
    Err(Error::Stuck("MII busy"))
}

fn phy_read(reg: u32) -> Result<u32, Error> {
    mii_idle()?;
    mac_write(MII_ACC, (PHY_ADDR << 11) | (reg << 6) | MII_BUSY)?;
    mii_idle()?;
    Ok(mac_read(MII_DATA)? & 0xffff)
}

fn phy_write(reg: u32, value: u32) -> Result<(), Error> {
    mii_idle()?;
    mac_write(MII_DATA, value)?;
    mac_write(
        MII_ACC,
        (PHY_ADDR << 11) | (reg << 6) | MII_WRITE | MII_BUSY,
    )?;
    mii_idle()
}

impl Lan9118 {
    /// Resets the chip and starts it: the MAC address from its EEPROM (or `fallback` when it
    /// has none), frames for that address and broadcast only, full duplex, autonegotiation.
    ///
    /// # Errors
    /// When the chip does not answer at its address or never leaves reset.
    pub fn init(fallback: [u8; 6], buffers: &'static mut Buffers) -> Result<Self, Error> {
        let test = read(BYTE_TEST);
        if test != BYTE_TEST_VALUE {
            return Err(Error::NotFound(test));
        }
        write(HW_CFG, HW_CFG_SRST);
        spin_until("soft reset", || read(HW_CFG) & HW_CFG_SRST == 0)?;
        spin_until("PMT_CTRL ready", || read(PMT_CTRL) & PMT_CTRL_READY != 0)?;
        write(INT_EN, 0);
        write(INT_STS, u32::MAX);

        let (low, high) = (mac_read(MAC_ADDRL)?, mac_read(MAC_ADDRH)?);
        let [a, b, c, d] = low.to_le_bytes();
        let [e, f, ..] = high.to_le_bytes();
        let mut mac = EthernetAddress([a, b, c, d, e, f]);
        if !mac.is_unicast() {
            mac = EthernetAddress(fallback);
            mac_write(
                MAC_ADDRL,
                u32::from_le_bytes([fallback[0], fallback[1], fallback[2], fallback[3]]),
            )?;
            mac_write(
                MAC_ADDRH,
                u32::from(fallback[4]) | u32::from(fallback[5]) << 8,
            )?;
        }

        phy_write(PHY_BCR, PHY_BCR_AUTONEG | PHY_BCR_RESTART_AUTONEG)?;
        // Perfect filtering (our address and broadcast), no promiscuous mode.
        mac_write(MAC_CR, MAC_CR_TXEN | MAC_CR_RXEN | MAC_CR_FDPX)?;
        write(TX_CFG, TX_CFG_TX_ON | TX_CFG_TXSAO);
        write(RX_CFG, 0);
        Ok(Self {
            mac,
            rx: &mut buffers.rx,
            tx: &mut buffers.tx,
        })
    }

    /// The controller's MAC address.
    pub fn mac(&self) -> EthernetAddress {
        self.mac
    }

    /// The chip's ID and revision (`0x0118_xxxx` for a LAN9118).
    pub fn id(&self) -> u32 {
        read(ID_REV)
    }

    /// Whether the PHY reports a link.
    pub fn link_up(&self) -> bool {
        phy_read(PHY_BSR).is_ok_and(|s| s & PHY_BSR_LINK != 0)
    }

    /// Takes the next good frame from the RX FIFOs into the receive buffer: its length. Bad
    /// or oversized frames are read out and dropped.
    fn receive_frame(&mut self) -> Option<usize> {
        while (read(RX_FIFO_INF) >> 16) & 0xff != 0 {
            let status = read(RX_STATUS_FIFO);
            let len = ((status >> 16) & 0x3fff) as usize;
            let frame = len.saturating_sub(4);
            let good = status & RX_STS_ERROR == 0 && (14..=MTU).contains(&frame);
            for i in 0..len.div_ceil(4) {
                let word = read(RX_DATA_FIFO).to_le_bytes();
                if good {
                    let at = i * 4;
                    let n = frame.saturating_sub(at).min(4);
                    self.rx[at..at + n].copy_from_slice(&word[..n]);
                }
            }
            if good {
                return Some(frame);
            }
        }
        None
    }

    /// Whether the TX data FIFO has room for a whole frame and its two command words.
    fn can_transmit() -> bool {
        (read(TX_FIFO_INF) & 0xffff) as usize >= MTU + 8
    }
}

/// Writes `frame` into the TX data FIFO as one segment; the chip sends it.
fn transmit_frame(frame: &[u8]) {
    let len = frame.len() as u32;
    write(TX_DATA_FIFO, TX_CMD_A_FIRST | TX_CMD_A_LAST | len);
    write(TX_DATA_FIFO, len);
    for chunk in frame.chunks(4) {
        let mut word = [0u8; 4];
        word[..chunk.len()].copy_from_slice(chunk);
        write(TX_DATA_FIFO, u32::from_le_bytes(word));
    }
}

/// A received frame, lent to smoltcp.
pub struct RxToken<'a>(&'a [u8]);

/// Room for a frame to send.
pub struct TxToken<'a>(&'a mut [u8; MTU]);

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let frame = &mut self.0[..len.min(MTU)];
        let r = f(frame);
        transmit_frame(frame);
        r
    }
}

impl Device for Lan9118 {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        if !Self::can_transmit() {
            return None;
        }
        let n = self.receive_frame()?;
        Some((RxToken(&self.rx[..n]), TxToken(self.tx)))
    }

    fn transmit(&mut self, _now: Instant) -> Option<TxToken<'_>> {
        Self::can_transmit().then_some(TxToken(self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.max_transmission_unit = MTU;
        caps.medium = Medium::Ethernet;
        caps
    }
}
