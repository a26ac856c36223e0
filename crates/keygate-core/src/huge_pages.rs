//! Asks the kernel to back a large table with huge pages (2 MiB on x86-64 and most
//! aarch64 Linux), where Linux leaves that to the program (transparent huge pages in
//! `madvise` mode, a common default). A check reads the key table and the hint index at
//! random: with 4 KiB pages, 200,000 keys span some 10,000 pages, more than the CPU's
//! TLB holds, so each lookup also waits for a page-table walk. Only advice: where it is
//! not followed (another OS, THP off, no huge page free) nothing changes but the speed.

/// The huge page size asked for (a table smaller than this gains nothing from them).
#[cfg(any(target_os = "linux", test))]
const HUGE_PAGE: usize = 2 << 20;

/// Advises huge pages for the whole 2 MiB pages inside `table`'s capacity. Called on
/// a fresh allocation before it is filled: its pages then come huge at their first touch
/// (pages already written would be left to the kernel's background collapse). The advice
/// outlives the table: memory the allocator later hands out in its range may come in huge
/// pages too, bounded by the table's own size, which was resident already.
pub(crate) fn advise_capacity<T>(table: &Vec<T>) {
    advise_range(table.as_ptr().cast(), table.capacity() * std::mem::size_of::<T>());
}

/// The whole huge pages inside `len` bytes from `start`, as (first, end) addresses.
#[cfg(any(target_os = "linux", test))]
fn huge_pages_within(start: usize, len: usize) -> Option<(usize, usize)> {
    let first = start.checked_next_multiple_of(HUGE_PAGE)?;
    let end = start.checked_add(len)? / HUGE_PAGE * HUGE_PAGE;
    (first < end).then_some((first, end))
}

#[cfg(target_os = "linux")]
fn advise_range(start: *const u8, len: usize) {
    let Some((first, end)) = huge_pages_within(start as usize, len) else { return };
    // SAFETY: the range is whole pages inside one live allocation; MADV_HUGEPAGE only
    // changes how the kernel backs them, never their contents, and fails harmlessly
    // (ignored: it is advice) where transparent huge pages are unavailable.
    unsafe {
        libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_range(_start: *const u8, _len: usize) {}

/// Whether the kernel holds huge-page advice for the first whole huge page inside `table`
/// (its mapping's `VmFlags` show `hg`); `None` where it cannot tell: no transparent huge
/// pages, or no whole huge page inside the table (then the first page's mapping is read).
#[cfg(all(test, target_os = "linux"))]
pub(crate) fn is_advised<T>(table: &[T]) -> Option<bool> {
    if !std::path::Path::new("/sys/kernel/mm/transparent_hugepage/enabled").exists() {
        return None;
    }
    let start = table.as_ptr() as usize;
    let address = huge_pages_within(start, std::mem::size_of_val(table)).map_or(start, |(first, _)| first);
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let mut inside = false;
    for line in smaps.lines() {
        let range = line.split_whitespace().next().and_then(|r| r.split_once('-'));
        match range.map(|(a, b)| (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))) {
            Some((Ok(a), Ok(b))) => inside = (a..b).contains(&address),
            _ if inside && line.starts_with("VmFlags:") => return Some(line.split_whitespace().any(|flag| flag == "hg")),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_huge_pages_inside_the_table_are_advised() {
        let mib = 1 << 20;
        assert_eq!(huge_pages_within(0, 4 * mib), Some((0, 4 * mib)));
        assert_eq!(huge_pages_within(1, 4 * mib), Some((2 * mib, 4 * mib)));
        assert_eq!(huge_pages_within(2 * mib - 1, 2 * mib + 1), Some((2 * mib, 4 * mib)));
        // No whole page inside: nothing, never a page beyond the table.
        assert_eq!(huge_pages_within(1, 4 * mib - 2), None);
        assert_eq!(huge_pages_within(mib, 2 * mib), None);
        assert_eq!(huge_pages_within(usize::MAX - 10, 100), None);
    }

    /// The kernel takes the advice for the table's own memory, where it has transparent
    /// huge pages at all.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_large_table_is_advised_to_the_kernel() {
        let mut table: Vec<u64> = Vec::with_capacity(3 << 20);
        advise_capacity(&table);
        table.resize(table.capacity(), 1);
        assert_ne!(is_advised(&table), Some(false));
    }
}
