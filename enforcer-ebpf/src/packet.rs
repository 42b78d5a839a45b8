//! The one bounds-checked accessor for packet memory.

use core::mem;

/// Largest offset into a packet the parsers ever compute. Every variable offset is
/// checked against it before use: the verifier needs an upper bound on a variable
/// offset before it accepts pointer arithmetic on packet pointers.
pub const MAX_PACKET_OFFSET: usize = 4096;

/// A view of the packet between `data` and `data_end`.
#[derive(Clone, Copy)]
pub struct Packet {
    start: usize,
    end: usize,
}

impl Packet {
    #[inline(always)]
    pub const fn new(start: usize, end: usize) -> Self {
        Self { start, end }
    }

    /// Bytes in the packet.
    #[inline(always)]
    pub const fn len(&self) -> usize {
        self.end - self.start
    }

    #[inline(always)]
    pub const fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// A pointer to a `T` at `offset`, if the whole `T` lies inside the packet.
    #[inline(always)]
    pub fn ptr_at<T>(&self, offset: usize) -> Option<*const T> {
        // Verifier workaround: bound the variable offset explicitly so the
        // verifier can prove `start + offset` stays within a packet's range.
        if offset > MAX_PACKET_OFFSET {
            return None;
        }
        let at = self.start + offset;
        if at + mem::size_of::<T>() > self.end {
            return None;
        }
        Some(at as *const T)
    }

    /// A copy of the `T` at `offset`, if it lies inside the packet. `T` must be a
    /// plain-data type (integers and byte arrays), valid for any bit pattern.
    #[inline(always)]
    pub fn load<T: Copy>(&self, offset: usize) -> Option<T> {
        let p = self.ptr_at::<T>(offset)?;
        // SAFETY: `ptr_at` checked that the whole `T` is inside the packet; the
        // read is unaligned because headers sit at arbitrary 2-byte offsets.
        Some(unsafe { core::ptr::read_unaligned(p) })
    }

    /// Writes `value` at `offset`, if the whole `T` lies inside the packet.
    #[inline(always)]
    pub fn store<T: Copy>(&self, offset: usize, value: T) -> bool {
        let Some(p) = self.ptr_at::<T>(offset) else {
            return false;
        };
        // SAFETY: bounds checked by `ptr_at`; XDP packet memory is writable.
        unsafe { core::ptr::write_unaligned(p.cast_mut(), value) };
        true
    }

    /// The byte at `offset`.
    #[inline(always)]
    pub fn byte(&self, offset: usize) -> Option<u8> {
        self.load::<u8>(offset)
    }

    /// The big-endian `u16` at `offset`.
    #[inline(always)]
    pub fn be16(&self, offset: usize) -> Option<u16> {
        self.load::<[u8; 2]>(offset).map(u16::from_be_bytes)
    }
}
