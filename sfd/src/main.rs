fn main() -> std::process::ExitCode {
    keep_large_allocations_returnable();
    sf_daemon::cli::main()
}

/// glibc raises its mmap threshold each time a large block is freed, after which large
/// blocks (a 29 MB reply of 100,000 tasks, its rows) come from the heap arenas and are kept
/// by the process after use: sfd grew by 25 MB per such reply. A fixed threshold keeps every
/// block of 1 MiB or more in its own mapping, returned to the system when freed.
#[cfg(target_env = "gnu")]
#[expect(unsafe_code, reason = "mallopt(3) has no safe wrapper")]
fn keep_large_allocations_returnable() {
    // SAFETY: called first thing in main, before any other thread exists; mallopt only
    // changes the allocator's parameters.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

#[cfg(not(target_env = "gnu"))]
fn keep_large_allocations_returnable() {}
