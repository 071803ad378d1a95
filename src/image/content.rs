//! Deterministic file content: fast to make, different per file and per block
//! (so nothing dedups by accident), reproducible from `(seed, size)` alone.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

const BLOCK: usize = 64 * 1024;

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fills `buf` with the bytes at block `block` of the stream for `seed`.
fn fill_block(seed: u64, block: u64, buf: &mut [u8]) {
    let mut state = seed ^ block.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    for chunk in buf.chunks_mut(8) {
        let v = splitmix(&mut state).to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
}

/// The full content of a file (for tests and small files).
pub fn bytes(seed: u64, size: u64) -> Vec<u8> {
    let mut out = vec![0u8; size as usize];
    for (i, chunk) in out.chunks_mut(BLOCK).enumerate() {
        fill_block(seed, i as u64, chunk);
    }
    out
}

/// The content for `(seed, size)` as a stream, block by block (what a synthetic
/// layer hands its consumer instead of a tar entry's data).
#[derive(Debug, Clone)]
pub struct ContentReader {
    seed: u64,
    size: u64,
    pos: u64,
    block: Vec<u8>,
    block_index: Option<u64>,
}

impl ContentReader {
    /// The `size` bytes of the stream for `seed`.
    pub fn new(seed: u64, size: u64) -> ContentReader {
        ContentReader {
            seed,
            size,
            pos: 0,
            block: vec![0u8; BLOCK],
            block_index: None,
        }
    }
}

impl std::io::Read for ContentReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.size || out.is_empty() {
            return Ok(0);
        }
        let index = self.pos / BLOCK as u64;
        let offset = (self.pos % BLOCK as u64) as usize;
        if self.block_index != Some(index) {
            let len = (self.size - index * BLOCK as u64).min(BLOCK as u64) as usize;
            fill_block(self.seed, index, &mut self.block[..len]);
            self.block_index = Some(index);
        }
        let in_block = ((self.size - index * BLOCK as u64).min(BLOCK as u64) as usize) - offset;
        let n = in_block.min(out.len());
        out[..n].copy_from_slice(&self.block[offset..offset + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

/// Writes a file of `size` bytes with the content for `seed` and sets `mode`
/// exactly (independent of the umask).
pub fn write_file(path: &Path, size: u64, seed: u64, mode: u32) -> std::io::Result<()> {
    let mut f = File::options()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    let mut buf = vec![0u8; BLOCK.min(size as usize)];
    let mut written = 0u64;
    let mut block = 0u64;
    while written < size {
        let n = (size - written).min(BLOCK as u64) as usize;
        fill_block(seed, block, &mut buf[..n]);
        f.write_all(&buf[..n])?;
        written += n as u64;
        block += 1;
    }
    f.set_permissions(std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reader_streams_the_same_bytes() {
        use std::io::Read;
        for size in [0u64, 1, 100, BLOCK as u64, 3 * BLOCK as u64 + 17] {
            let mut got = Vec::new();
            ContentReader::new(5, size)
                .read_to_end(&mut got)
                .expect("reads");
            assert_eq!(got, bytes(5, size), "size {size}");
        }
    }

    #[test]
    fn write_matches_bytes_and_differs_by_seed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("f");
        write_file(&p, 200_000, 7, 0o600).expect("write");
        assert_eq!(std::fs::read(&p).expect("read"), bytes(7, 200_000));
        assert_ne!(bytes(7, 64), bytes(8, 64));
        assert_ne!(
            bytes(7, 2 * BLOCK as u64)[..BLOCK],
            bytes(7, 2 * BLOCK as u64)[BLOCK..]
        );
        let mode = std::fs::metadata(&p).expect("meta").permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600);
    }
}
