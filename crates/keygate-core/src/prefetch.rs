//! A hint to the CPU to start loading a cache line that will be read soon, so that
//! a check's memory reads overlap its computing (hashing the secret, folding names)
//! instead of stalling one after the other. Only a hint: it never faults, reads
//! nothing the program sees, and is a no-op where the architecture has none here.

/// Starts loading the cache line holding the start of `value`.
#[inline(always)]
pub(crate) fn prefetch<T>(value: &T) {
    prefetch_address(std::ptr::from_ref(value).cast());
}

/// Starts loading every cache line of `value` (for values that span several).
#[inline(always)]
pub(crate) fn prefetch_all<T>(value: &T) {
    let start: *const u8 = std::ptr::from_ref(value).cast();
    let size = std::mem::size_of::<T>();
    let mut offset = 0;
    while offset < size {
        prefetch_address(start.wrapping_add(offset));
        offset += 64;
    }
    // The last line, when `value` starts partway into its first one.
    prefetch_address(start.wrapping_add(size.saturating_sub(1)));
}

#[inline(always)]
fn prefetch_address(address: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads no memory the program can observe and never faults,
    // whatever the address; SSE, which has it, is part of every x86-64 CPU.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(address.cast());
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: as above; `prfm` is a hint that never faults.
    unsafe {
        std::arch::asm!("prfm pldl1keep, [{0}]", in(reg) address, options(nostack, preserves_flags, readonly));
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = address;
}
