fn main() -> std::process::ExitCode {
    keep_large_allocations_returnable();
    close_inherited_descriptors_on_exec();
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

/// Whatever descriptors sfd inherited from whoever started it (a shell's, a supervisor's, a
/// test harness's) must not reach the agents it starts: every descriptor above stderr is
/// marked close-on-exec before anything else runs. sfd's own descriptors are opened
/// close-on-exec by the standard library; a child gets stdin, stdout and stderr only.
#[expect(unsafe_code, reason = "close_range(2) and fcntl(2) on raw descriptors")]
fn close_inherited_descriptors_on_exec() {
    // SAFETY: called first thing in main, before any other thread exists; setting the
    // close-on-exec flag changes no descriptor's meaning for this process.
    let done = unsafe {
        libc::close_range(
            3,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC.cast_signed(),
        )
    };
    if done == 0 {
        return;
    }
    // kernels before 5.11: one descriptor at a time
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = dir
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2)
        .collect();
    for fd in fds {
        // SAFETY: as above; a descriptor closed meanwhile (the directory's own) fails with
        // EBADF, which is harmless.
        unsafe {
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
    }
}
