//! (in progress: placeholder API, replaced by the real normaliser)

/// A normalised request path that cannot name anything outside the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SafePath<'a> {
    bytes: &'a [u8],
}

impl<'a> SafePath<'a> {
    /// The decoded path below the root without a leading slash; empty for the root itself.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
}
