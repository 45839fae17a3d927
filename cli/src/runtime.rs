//! The two ways the binary schedules its tasks (decision 0015).

/// Tokio's multi-threaded runtime without its LIFO slot where the build allows it: a task woken
/// by the running one queues behind the others instead of running next, so a connection's
/// writer sends what several tasks queued in one write. For the commands that serve requests
/// (`run`, `dev`, `bench`): the request/reply paths measured 15-25 % cheaper per command.
pub fn serving() -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    #[cfg(tokio_unstable)]
    builder.disable_lifo_slot();
    builder.build()
}

/// Tokio's default multi-threaded runtime, for every other command. Why not [`serving`]: a
/// long read (the audit, a rebuild, an export) is one task woken by its connection for each
/// message; run next on the same worker, it is not handed to the other worker, woken for it.
/// `paystate bench-read`, 600,000 events, two alternating pairs: raw read 1.33-1.37 against
/// 2.20-2.29 CPU s, audit 3.36-3.45 against 3.88-4.04 s.
pub fn reading() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}
