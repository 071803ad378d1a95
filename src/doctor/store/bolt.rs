//! A read-only reader of bbolt files (containerd's `metadata.db` and `meta.db`).
//!
//! Why not the bbolt port: a running containerd holds an exclusive flock on its
//! databases, and bbolt's read-only open waits for a shared one forever. This
//! reader takes no lock: it parses bytes read once. A commit under way may leave
//! them inconsistent, so the caller rereads on error.
//!
//! Invariant: every offset, count and page number the file holds is checked
//! before use. A hostile or torn file gives an error naming the page, never a
//! panic, a loop (each page is visited at most once per tree, trees are at most
//! `MAX_TREE_DEPTH` deep) or an allocation beyond the file's own size.
//!
//! The format (etcd-io/bbolt, little-endian): pages of `page_size` bytes, each
//! with a 16-byte header (`id u64, flags u16, count u16, overflow u32`); pages 0
//! and 1 are metas (the valid one with the higher txid wins; FNV-1a-64 checksum
//! over its first 56 bytes); a bucket is a B+tree of branch pages (elements
//! `pos u32, ksize u32, pgid u64`) over leaf pages (elements `flags u32, pos u32,
//! ksize u32, vsize u32`, `pos` counting from the element's own address); a
//! bucket's value starts with `{root pgid u64, sequence u64}`, and root 0 means
//! the bucket's leaf page follows inline.

use std::collections::HashSet;

const MAGIC: u32 = 0xED0C_DAED;
const VERSION: u32 = 2;
const PAGE_HEADER: usize = 16;
const ELEMENT: usize = 16;
const BRANCH_PAGE: u16 = 0x01;
const LEAF_PAGE: u16 = 0x02;
const BUCKET_LEAF: u32 = 0x01;
const BUCKET_HEADER: usize = 16;
/// Bytes of a meta covered by its checksum (magic … txid).
const META_CHECKED: usize = 56;
/// A few levels of B+tree hold millions of keys: deeper is garbage or a cycle.
const MAX_TREE_DEPTH: usize = 32;
/// Page sizes tried when meta 0 is damaged (bbolt uses the OS page size).
const PAGE_SIZES: [usize; 8] = [4096, 512, 1024, 2048, 8192, 16384, 32768, 65536];

/// Why a file is not a readable bbolt database.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoltError {
    /// Not even two meta pages.
    #[error("{len} bytes is too small for a bbolt database")]
    TooSmall { len: usize },
    /// Neither meta page has the magic, version, page size and checksum bbolt writes.
    #[error("no valid meta page ({0})")]
    NoMeta(String),
    /// A page, element or bucket that points outside the file or contradicts itself.
    #[error("{at}: {what}")]
    Corrupt { at: String, what: String },
}

fn corrupt(at: impl Into<String>, what: impl Into<String>) -> BoltError {
    BoltError::Corrupt {
        at: at.into(),
        what: what.into(),
    }
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// What a valid meta page says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Meta {
    page_size: usize,
    root: u64,
    high_water: u64,
    txid: u64,
}

fn meta_at(data: &[u8], offset: usize) -> Result<Meta, String> {
    let body = offset
        .checked_add(PAGE_HEADER)
        .and_then(|s| data.get(s..s.checked_add(64)?))
        .ok_or_else(|| format!("meta at byte {offset}: past the end"))?;
    let field = |off| u64_at(body, off).unwrap_or(0);
    let (magic, version) = (u32_at(body, 0).unwrap_or(0), u32_at(body, 4).unwrap_or(0));
    if magic != MAGIC {
        return Err(format!("meta at byte {offset}: magic {magic:#x}"));
    }
    if version != VERSION {
        return Err(format!("meta at byte {offset}: version {version}"));
    }
    let page_size = u32_at(body, 8).unwrap_or(0) as usize;
    if !page_size.is_power_of_two() || !(512..=1 << 20).contains(&page_size) {
        return Err(format!("meta at byte {offset}: page size {page_size}"));
    }
    if fnv1a64(&body[..META_CHECKED]) != field(META_CHECKED) {
        return Err(format!("meta at byte {offset}: checksum mismatch"));
    }
    Ok(Meta {
        page_size,
        root: field(16),
        high_water: field(40),
        txid: field(48),
    })
}

/// One bbolt database, borrowed from the bytes read.
#[derive(Debug, Clone, Copy)]
pub struct Db<'a> {
    data: &'a [u8],
    meta: Meta,
}

impl<'a> Db<'a> {
    /// Checks the metas and picks the newest valid one.
    pub fn parse(data: &'a [u8]) -> Result<Db<'a>, BoltError> {
        if data.len() < 2 * 512 {
            return Err(BoltError::TooSmall { len: data.len() });
        }
        let m0 = meta_at(data, 0);
        // Meta 1 sits one page in; meta 0 says how big a page is, and when it
        // is damaged the usual sizes are tried.
        let sizes: Vec<usize> = m0
            .as_ref()
            .ok()
            .map(|m| m.page_size)
            .into_iter()
            .chain(PAGE_SIZES)
            .collect();
        let mut why = vec![m0.as_ref().err().cloned().unwrap_or_default()];
        let m1 = sizes.iter().find_map(|&p| match meta_at(data, p) {
            Ok(m) if m.page_size == p => Some(m),
            Ok(m) => {
                why.push(format!("meta at byte {p} says page size {}", m.page_size));
                None
            }
            Err(e) => {
                why.push(e);
                None
            }
        });
        let best = [m0.ok(), m1]
            .into_iter()
            .flatten()
            .filter(|m| m.root >= 2 && m.root < m.high_water)
            .max_by_key(|m| m.txid)
            .ok_or_else(|| {
                BoltError::NoMeta(
                    why.into_iter()
                        .filter(|w| !w.is_empty())
                        .take(3)
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            })?;
        Ok(Db { data, meta: best })
    }

    /// The transaction id of the meta in use.
    pub fn txid(&self) -> u64 {
        self.meta.txid
    }

    /// The root bucket (holding the top-level buckets).
    pub fn root(&self) -> Bucket<'a> {
        Bucket {
            db: *self,
            root: Root::Page(self.meta.root),
            name: "root".into(),
        }
    }

    /// Page `pgid` with its overflow pages.
    fn page(&self, pgid: u64) -> Result<&'a [u8], BoltError> {
        let at = || format!("page {pgid}");
        if pgid < 2 || pgid >= self.meta.high_water {
            return Err(corrupt(
                at(),
                format!(
                    "outside the data pages (2..{} in use)",
                    self.meta.high_water
                ),
            ));
        }
        let ps = self.meta.page_size as u64;
        let start = pgid
            .checked_mul(ps)
            .ok_or_else(|| corrupt(at(), "offset overflows"))?;
        let header = usize::try_from(start)
            .ok()
            .and_then(|s| self.data.get(s..s.checked_add(PAGE_HEADER)?))
            .ok_or_else(|| corrupt(at(), "past the end of the file"))?;
        if u64_at(header, 0) != Some(pgid) {
            return Err(corrupt(at(), "its header names another page"));
        }
        let overflow = u64::from(u32_at(header, 12).unwrap_or(0));
        let end = (overflow + 1)
            .checked_mul(ps)
            .and_then(|len| start.checked_add(len))
            .ok_or_else(|| corrupt(at(), "overflow count overflows"))?;
        usize::try_from(start)
            .ok()
            .zip(usize::try_from(end).ok())
            .and_then(|(s, e)| self.data.get(s..e))
            .ok_or_else(|| corrupt(at(), format!("{overflow} overflow pages run past the end")))
    }
}

#[derive(Debug, Clone, Copy)]
enum Root<'a> {
    Page(u64),
    Inline(&'a [u8]),
}

/// A bucket: a B+tree of keys to values or to nested buckets.
#[derive(Debug, Clone)]
pub struct Bucket<'a> {
    db: Db<'a>,
    root: Root<'a>,
    /// Path of bucket names, for errors.
    name: String,
}

/// One key of a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The key.
    pub key: &'a [u8],
    /// The value (for a nested bucket: its header and inline page).
    pub value: &'a [u8],
    /// Whether the value is a nested bucket.
    pub is_bucket: bool,
}

impl<'a> Bucket<'a> {
    /// Every key in order, values and nested buckets alike.
    pub fn entries(&self) -> Result<Vec<Entry<'a>>, BoltError> {
        let mut out = Vec::new();
        match self.root {
            Root::Inline(page) => leaf(page, &format!("inline bucket {}", self.name), &mut out)?,
            Root::Page(pgid) => self.walk(pgid, 0, &mut HashSet::new(), &mut out)?,
        }
        Ok(out)
    }

    fn walk(
        &self,
        pgid: u64,
        depth: usize,
        visited: &mut HashSet<u64>,
        out: &mut Vec<Entry<'a>>,
    ) -> Result<(), BoltError> {
        let at = || format!("bucket {} page {pgid}", self.name);
        if depth > MAX_TREE_DEPTH {
            return Err(corrupt(
                at(),
                format!("tree deeper than {MAX_TREE_DEPTH} levels"),
            ));
        }
        if !visited.insert(pgid) {
            return Err(corrupt(at(), "reached twice (a cycle)"));
        }
        let page = self.db.page(pgid)?;
        let flags = u16_at(page, 8).unwrap_or(0);
        if flags & LEAF_PAGE != 0 {
            return leaf(page, &at(), out);
        }
        if flags & BRANCH_PAGE == 0 {
            return Err(corrupt(
                at(),
                format!("neither branch nor leaf (flags {flags:#x})"),
            ));
        }
        let count = usize::from(u16_at(page, 10).unwrap_or(0));
        if PAGE_HEADER + count * ELEMENT > page.len() {
            return Err(corrupt(at(), format!("{count} elements do not fit")));
        }
        for i in 0..count {
            let child = u64_at(page, PAGE_HEADER + i * ELEMENT + 8).unwrap_or(0);
            self.walk(child, depth + 1, visited, out)?;
        }
        Ok(())
    }

    /// The value of `key`, unless absent or a bucket.
    pub fn get(&self, key: &[u8]) -> Result<Option<&'a [u8]>, BoltError> {
        Ok(self
            .entries()?
            .into_iter()
            .find(|e| e.key == key && !e.is_bucket)
            .map(|e| e.value))
    }

    /// The nested bucket `key`, if present.
    pub fn bucket(&self, key: &[u8]) -> Result<Option<Bucket<'a>>, BoltError> {
        match self
            .entries()?
            .into_iter()
            .find(|e| e.key == key && e.is_bucket)
        {
            Some(e) => self.nested(&e).map(Some),
            None => Ok(None),
        }
    }

    /// The bucket an entry holds.
    pub fn nested(&self, e: &Entry<'a>) -> Result<Bucket<'a>, BoltError> {
        let name = format!("{}/{}", self.name, String::from_utf8_lossy(e.key));
        if !e.is_bucket {
            return Err(corrupt(name, "not a bucket"));
        }
        let root =
            u64_at(e.value, 0).ok_or_else(|| corrupt(name.clone(), "bucket header cut short"))?;
        let root = if root == 0 {
            Root::Inline(&e.value[BUCKET_HEADER.min(e.value.len())..])
        } else {
            Root::Page(root)
        };
        Ok(Bucket {
            db: self.db,
            root,
            name,
        })
    }
}

/// The elements of a leaf page (a file page or an inline bucket's page).
fn leaf<'a>(page: &'a [u8], at: &str, out: &mut Vec<Entry<'a>>) -> Result<(), BoltError> {
    let flags = u16_at(page, 8).ok_or_else(|| corrupt(at, "page header cut short"))?;
    if flags & LEAF_PAGE == 0 {
        return Err(corrupt(at, format!("not a leaf (flags {flags:#x})")));
    }
    let count = usize::from(u16_at(page, 10).unwrap_or(0));
    if PAGE_HEADER + count * ELEMENT > page.len() {
        return Err(corrupt(at, format!("{count} elements do not fit")));
    }
    out.reserve(count);
    for i in 0..count {
        let base = PAGE_HEADER + i * ELEMENT;
        let field = |off| u32_at(page, base + off).unwrap_or(0) as usize;
        let (flags, pos, ksize, vsize) = (field(0) as u32, field(4), field(8), field(12));
        let key_start = base.checked_add(pos);
        let key_end = key_start.and_then(|s| s.checked_add(ksize));
        let val_end = key_end.and_then(|e| e.checked_add(vsize));
        match (key_start, key_end, val_end) {
            (Some(ks), Some(ke), Some(ve)) if ve <= page.len() => out.push(Entry {
                key: &page[ks..ke],
                value: &page[ke..ve],
                is_bucket: flags & BUCKET_LEAF != 0,
            }),
            _ => {
                return Err(corrupt(
                    at,
                    format!(
                    "element {i} (pos {pos}, key {ksize} B, value {vsize} B) runs past the page"
                ),
                ))
            }
        }
    }
    Ok(())
}

/// Go's `binary.Uvarint`: the value and the bytes it took.
pub fn uvarint(b: &[u8]) -> Option<(u64, usize)> {
    let mut x: u64 = 0;
    for (i, &byte) in b.iter().enumerate().take(10) {
        if i == 9 && byte > 1 {
            return None;
        }
        x |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Some((x, i + 1));
        }
    }
    None
}

/// Go's `binary.Varint` (zig-zag).
pub fn varint(b: &[u8]) -> Option<(i64, usize)> {
    let (u, n) = uvarint(b)?;
    let x = (u >> 1) as i64;
    Some((if u & 1 != 0 { !x } else { x }, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal database written the way bbolt lays it out: 2 metas, a root
    /// leaf at page 2 holding one value and one bucket with an inline page.
    pub(crate) fn tiny_db(page_size: usize) -> Vec<u8> {
        let mut data = vec![0u8; page_size * 3];
        for (i, txid) in [(0usize, 1u64), (1, 2)] {
            let p = i * page_size;
            data[p..p + 8].copy_from_slice(&(i as u64).to_le_bytes());
            data[p + 8..p + 10].copy_from_slice(&0x04u16.to_le_bytes());
            let m = p + PAGE_HEADER;
            data[m..m + 4].copy_from_slice(&MAGIC.to_le_bytes());
            data[m + 4..m + 8].copy_from_slice(&VERSION.to_le_bytes());
            data[m + 8..m + 12].copy_from_slice(&(page_size as u32).to_le_bytes());
            data[m + 16..m + 24].copy_from_slice(&2u64.to_le_bytes());
            data[m + 40..m + 48].copy_from_slice(&3u64.to_le_bytes());
            data[m + 48..m + 56].copy_from_slice(&txid.to_le_bytes());
            let sum = fnv1a64(&data[m..m + META_CHECKED]);
            data[m + 56..m + 64].copy_from_slice(&sum.to_le_bytes());
        }
        // The inline bucket: header {root 0, seq 0} + a leaf page with "id" -> 7.
        let mut inline = vec![0u8; BUCKET_HEADER + PAGE_HEADER + ELEMENT];
        inline[BUCKET_HEADER + 8..BUCKET_HEADER + 10].copy_from_slice(&LEAF_PAGE.to_le_bytes());
        inline[BUCKET_HEADER + 10..BUCKET_HEADER + 12].copy_from_slice(&1u16.to_le_bytes());
        let el = BUCKET_HEADER + PAGE_HEADER;
        inline[el + 4..el + 8].copy_from_slice(&(ELEMENT as u32).to_le_bytes());
        inline[el + 8..el + 12].copy_from_slice(&2u32.to_le_bytes());
        inline[el + 12..el + 16].copy_from_slice(&1u32.to_le_bytes());
        inline.extend_from_slice(b"id\x07");
        let p = 2 * page_size;
        data[p..p + 8].copy_from_slice(&2u64.to_le_bytes());
        data[p + 8..p + 10].copy_from_slice(&LEAF_PAGE.to_le_bytes());
        data[p + 10..p + 12].copy_from_slice(&2u16.to_le_bytes());
        let payload = p + PAGE_HEADER + 2 * ELEMENT;
        let mut at = payload;
        for (i, (flags, key, value)) in [(0u32, &b"k"[..], &b"v"[..]), (1, b"sub", &inline[..])]
            .into_iter()
            .enumerate()
        {
            let e = p + PAGE_HEADER + i * ELEMENT;
            data[e..e + 4].copy_from_slice(&flags.to_le_bytes());
            data[e + 4..e + 8].copy_from_slice(&((at - e) as u32).to_le_bytes());
            data[e + 8..e + 12].copy_from_slice(&(key.len() as u32).to_le_bytes());
            data[e + 12..e + 16].copy_from_slice(&(value.len() as u32).to_le_bytes());
            data[at..at + key.len()].copy_from_slice(key);
            at += key.len();
            data[at..at + value.len()].copy_from_slice(value);
            at += value.len();
        }
        data
    }

    #[test]
    fn reads_values_and_inline_buckets() {
        let data = tiny_db(4096);
        let db = Db::parse(&data).expect("parses");
        assert_eq!(db.txid(), 2, "the newer meta wins");
        let root = db.root();
        assert_eq!(root.get(b"k").expect("get"), Some(&b"v"[..]));
        let sub = root.bucket(b"sub").expect("bucket").expect("present");
        assert_eq!(sub.get(b"id").expect("get"), Some(&[7u8][..]));
        assert!(
            root.bucket(b"k").expect("lookup").is_none(),
            "a value is no bucket"
        );
    }

    #[test]
    fn a_damaged_meta_falls_back_to_the_other() {
        let mut data = tiny_db(4096);
        // Meta 1 (txid 2) damaged: meta 0 (txid 1) is used.
        data[4096 + PAGE_HEADER + 50] ^= 0xff;
        assert_eq!(Db::parse(&data).expect("meta 0").txid(), 1);
        // Meta 0 damaged: meta 1 is found at the usual page size.
        let mut data = tiny_db(4096);
        data[PAGE_HEADER] ^= 0xff;
        assert_eq!(Db::parse(&data).expect("meta 1").txid(), 2);
        data[4096 + PAGE_HEADER] ^= 0xff;
        assert!(matches!(Db::parse(&data), Err(BoltError::NoMeta(_))));
    }

    /// Every single-byte corruption and every truncation gives a result or an
    /// error, never a panic; the walk stays bounded.
    #[test]
    fn hostile_bytes_never_panic() {
        let data = tiny_db(512);
        let read_all = |d: &[u8]| -> Result<usize, BoltError> {
            let db = Db::parse(d)?;
            let mut n = 0;
            for e in db.root().entries()? {
                n += 1;
                if e.is_bucket {
                    n += db.root().nested(&e)?.entries()?.len();
                }
            }
            Ok(n)
        };
        assert_eq!(read_all(&data), Ok(3));
        for len in 0..data.len() {
            let _ = read_all(&data[..len]);
        }
        for i in 0..data.len() {
            for v in [0x00, 0xff, 0x7f, 0x80, 0x02] {
                let mut d = data.clone();
                d[i] = v;
                // A meta whose checksum was fixed up after the change, so the
                // change reaches the tree walk.
                for m in [0usize, 512] {
                    let body = m + PAGE_HEADER;
                    let sum = fnv1a64(&d[body..body + META_CHECKED]);
                    d[body + 56..body + 64].copy_from_slice(&sum.to_le_bytes());
                }
                let _ = read_all(&d);
            }
        }
    }

    #[test]
    fn a_page_pointing_at_itself_is_refused() {
        let mut data = tiny_db(4096);
        // Turn the root leaf into a branch whose first child is itself.
        let p = 2 * 4096;
        data[p + 8..p + 10].copy_from_slice(&BRANCH_PAGE.to_le_bytes());
        data[p + PAGE_HEADER + 8..p + PAGE_HEADER + 16].copy_from_slice(&2u64.to_le_bytes());
        let err = Db::parse(&data)
            .expect("metas fine")
            .root()
            .entries()
            .unwrap_err();
        assert!(err.to_string().contains("reached twice"), "{err}");
    }

    #[test]
    fn go_varints() {
        assert_eq!(uvarint(&[0x96, 0x01]), Some((150, 2)));
        assert_eq!(uvarint(&[0x80]), None);
        assert_eq!(uvarint(&[0xff; 11]), None);
        // binary.PutVarint(-3) = 5, (300) = 0xd8 0x04.
        assert_eq!(varint(&[0x05]), Some((-3, 1)));
        assert_eq!(varint(&[0xd8, 0x04]), Some((300, 2)));
    }
}
