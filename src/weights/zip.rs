//! A minimal reader of the zip archives `torch.save` writes.
//!
//! Hand-written rather than a dependency because PyTorch's writer (miniz,
//! `PyTorchStreamWriter`) stores every entry uncompressed: all we need is
//! each entry's name and where its bytes lie in the (memory-mapped) file,
//! so tensors are read in place without a copy. Zip64 records are read
//! (checkpoints above 4 GiB use them); compressed or encrypted entries are
//! refused by name. Every offset and length comes from an untrusted file,
//! so each is bounds-checked before use: malformed input is an error,
//! never a panic or an allocation sized by the file's claims.

use std::collections::HashMap;
use std::ops::Range;

const EOCD_SIG: u32 = 0x0605_4b50;
const EOCD64_LOCATOR_SIG: u32 = 0x0706_4b50;
const EOCD64_SIG: u32 = 0x0606_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const LOCAL_SIG: u32 = 0x0403_4b50;
const EOCD_LEN: usize = 22;
const CENTRAL_LEN: usize = 46;
const LOCAL_LEN: usize = 30;

/// The entries of an archive: name → byte range of the stored data.
#[derive(Debug, Default)]
pub struct ZipIndex {
    pub entries: HashMap<String, Range<usize>>,
}

/// Little-endian reads that fail instead of panicking past the end.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn slice(&self, at: usize, len: usize) -> Result<&[u8], String> {
        at.checked_add(len)
            .and_then(|end| self.bytes.get(at..end))
            .ok_or_else(|| {
                format!(
                    "truncated: {len} bytes at offset {at} lie past the end ({} bytes)",
                    self.bytes.len()
                )
            })
    }
    fn u16(&self, at: usize) -> Result<u16, String> {
        let b = self.slice(at, 2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&self, at: usize) -> Result<u32, String> {
        let b = self.slice(at, 4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&self, at: usize) -> Result<u64, String> {
        let b = self.slice(at, 8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
}

fn to_usize(v: u64, what: &str) -> Result<usize, String> {
    usize::try_from(v).map_err(|_| format!("{what} {v} does not fit in memory"))
}

/// Reads the central directory and resolves every entry's data range.
pub fn read_index(bytes: &[u8]) -> Result<ZipIndex, String> {
    let r = Reader { bytes };
    let eocd = find_eocd(bytes).ok_or("no end-of-central-directory record (not a complete zip archive)")?;
    let mut count = u64::from(r.u16(eocd + 10)?);
    let mut cd_size = u64::from(r.u32(eocd + 12)?);
    let mut cd_offset = u64::from(r.u32(eocd + 16)?);
    if count == 0xFFFF || cd_size == 0xFFFF_FFFF || cd_offset == 0xFFFF_FFFF {
        // Zip64: the real values are in the zip64 end record, found
        // through the locator just before the classic record.
        let locator = eocd
            .checked_sub(20)
            .ok_or("zip64 archive without a zip64 locator")?;
        if r.u32(locator)? != EOCD64_LOCATOR_SIG {
            return Err("zip64 archive without a zip64 locator".into());
        }
        let at = to_usize(r.u64(locator + 8)?, "zip64 record offset")?;
        if r.u32(at)? != EOCD64_SIG {
            return Err(format!("no zip64 end record at offset {at}"));
        }
        count = r.u64(at + 32)?;
        cd_size = r.u64(at + 40)?;
        cd_offset = r.u64(at + 48)?;
    }
    let cd_offset = to_usize(cd_offset, "central directory offset")?;
    let cd_size = to_usize(cd_size, "central directory size")?;
    r.slice(cd_offset, cd_size)
        .map_err(|e| format!("central directory: {e}"))?;
    // Each record takes at least CENTRAL_LEN bytes: a count larger than
    // the directory can hold is a lie, not an allocation size.
    if count > (cd_size / CENTRAL_LEN) as u64 {
        return Err(format!(
            "the archive claims {count} entries but its central directory ({cd_size} bytes) holds at most {}",
            cd_size / CENTRAL_LEN
        ));
    }

    let mut index = ZipIndex::default();
    let mut at = cd_offset;
    for _ in 0..count {
        let (name, range, next) = read_entry(&r, at)?;
        if index.entries.insert(name.clone(), range).is_some() {
            return Err(format!("entry {name} appears twice"));
        }
        at = next;
    }
    Ok(index)
}

/// The end-of-central-directory record: searched backwards, as it may be
/// followed by a comment of up to 64 KiB.
fn find_eocd(bytes: &[u8]) -> Option<usize> {
    let last = bytes.len().checked_sub(EOCD_LEN)?;
    let first = last.saturating_sub(0xFFFF);
    (first..=last)
        .rev()
        .find(|&i| bytes[i..i + 4] == EOCD_SIG.to_le_bytes())
}

/// One central-directory record at `at`: (name, data range, next record).
fn read_entry(r: &Reader, at: usize) -> Result<(String, Range<usize>, usize), String> {
    if r.u32(at)? != CENTRAL_SIG {
        return Err(format!("no central directory record at offset {at}"));
    }
    let flags = r.u16(at + 8)?;
    let method = r.u16(at + 10)?;
    let mut compressed = u64::from(r.u32(at + 20)?);
    let mut size = u64::from(r.u32(at + 24)?);
    let name_len = usize::from(r.u16(at + 28)?);
    let extra_len = usize::from(r.u16(at + 30)?);
    let comment_len = usize::from(r.u16(at + 32)?);
    let mut local = u64::from(r.u32(at + 42)?);
    let name_bytes = r.slice(at + CENTRAL_LEN, name_len)?;
    let name = String::from_utf8_lossy(name_bytes).into_owned();
    let extra = r.slice(at + CENTRAL_LEN + name_len, extra_len)?;
    apply_zip64_extra(extra, &mut size, &mut compressed, &mut local)
        .map_err(|e| format!("entry {name}: {e}"))?;
    let next = at + CENTRAL_LEN + name_len + extra_len + comment_len;

    if flags & 1 != 0 {
        return Err(format!("entry {name} is encrypted"));
    }
    if method != 0 {
        return Err(format!(
            "entry {name} is compressed (method {method}); torch.save stores entries uncompressed, \
             re-save the checkpoint with torch.save"
        ));
    }
    if compressed != size {
        return Err(format!(
            "entry {name} is stored with {compressed} bytes but declares {size}"
        ));
    }
    // The data follows the *local* header, whose extra field may differ
    // from the central one (torch pads it to align tensor data).
    let local = to_usize(local, "local header offset")?;
    if r.u32(local)? != LOCAL_SIG {
        return Err(format!("entry {name}: no local header at offset {local}"));
    }
    let local_name = usize::from(r.u16(local + 26)?);
    let local_extra = usize::from(r.u16(local + 28)?);
    let start = local + LOCAL_LEN + local_name + local_extra;
    let size = to_usize(size, "entry size")?;
    r.slice(start, size).map_err(|e| format!("entry {name}: {e}"))?;
    Ok((name, start..start + size, next))
}

/// Fills the 0xFFFFFFFF placeholders from a zip64 extended-information
/// field, which lists only the values that overflowed, in this order.
fn apply_zip64_extra(
    extra: &[u8],
    size: &mut u64,
    compressed: &mut u64,
    local: &mut u64,
) -> Result<(), String> {
    let r = Reader { bytes: extra };
    let mut at = 0;
    while at + 4 <= extra.len() {
        let id = r.u16(at)?;
        let len = usize::from(r.u16(at + 2)?);
        if id == 0x0001 {
            let mut field = at + 4;
            for value in [size, compressed, local] {
                if *value == 0xFFFF_FFFF {
                    if field + 8 > at + 4 + len {
                        return Err("zip64 extra field too short".into());
                    }
                    *value = r.u64(field)?;
                    field += 8;
                }
            }
            return Ok(());
        }
        at += 4 + len;
    }
    Ok(())
}
