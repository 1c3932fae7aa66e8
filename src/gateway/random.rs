//! Secrets the gateway mints (session ids, the key that seals `requestState`) come
//! from the OS random source only: when it fails, nothing is minted.

/// Fills `bytes` from the OS random source.
pub(super) fn fill(bytes: &mut [u8]) -> std::io::Result<()> {
    getrandom::fill(bytes)
        .map_err(|e| std::io::Error::other(format!("the OS random source failed: {e}")))
}
