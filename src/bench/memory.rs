//! Peak memory of this process, from Linux's /proc.
//!
//! `VmHWM` is the resident-set high-water mark: the most physical memory the
//! whole process held at once — weights as loaded, tract's packed copies of
//! them in each plan, activations, and the compile when bench was given a
//! config. Writing `5` to /proc/self/clear_refs resets it to the current
//! resident size, so a benchmark can measure one phase at a time.

/// The peak resident set size in bytes, or `None` off Linux.
pub fn peak_rss_bytes() -> Option<u64> {
    status_kib("VmHWM:").map(|k| k * 1024)
}

/// The current resident set size in bytes, or `None` off Linux.
pub fn current_rss_bytes() -> Option<u64> {
    status_kib("VmRSS:").map(|k| k * 1024)
}

/// Resets the high-water mark to the current RSS; `false` when the kernel
/// does not allow it (then the peak covers the whole process lifetime).
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn status_kib(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// The machine's physical memory in bytes (`MemTotal`), or `None` off
/// Linux: the bound a benchmark's activations are checked against before
/// anything is allocated.
pub fn machine_memory_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line["MemTotal:".len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}
